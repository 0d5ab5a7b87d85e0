/** age file in, plaintext out: only ever bytes of chunks that authenticated. */
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { LifeboatError } from '../errors';
import { AgeDecoder, type OpenOptions } from './decoder';
import { CHUNK_SIZE, ENC_CHUNK_SIZE } from './format';
import { parseIdentity, type X25519Identity } from './keys';

export type { OpenOptions } from './decoder';

function parseIdentities(identities: readonly string[]): X25519Identity[] {
  if (identities.length === 0) throw new LifeboatError('AgeBadKey', 'no age identity given: opening an age file needs the identity (AGE-SECRET-KEY-1…) of one of its recipients');
  return identities.map((s, i) => parseIdentity(s, `age identity #${i + 1}`));
}

class AgeOpener extends Transform {
  private readonly decoder: AgeDecoder;

  constructor(identities: readonly X25519Identity[], options: OpenOptions) {
    super({ readableHighWaterMark: 4 * CHUNK_SIZE, writableHighWaterMark: ENC_CHUNK_SIZE });
    this.decoder = new AgeDecoder(identities, (p) => this.push(p), options);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.decoder.write(chunk);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.decoder.end();
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/**
 * A Transform that decrypts an age file with the first identity that matches
 * one of its recipients. It releases a chunk only after it authenticated and
 * is known not to be a wrongly-placed final chunk, so on tampering in chunk k
 * at most chunks 0..k-1 have come out, and the stream then errors with a
 * LifeboatError (AgeNotEncrypted, AgeBadHeader, AgeNoMatchingIdentity,
 * AgeAuthFailed, AgeTruncated). A clean 'end' means the file authenticated to
 * its final chunk. Identities are validated now (AgeBadKey).
 */
export function openStream(identities: readonly string[], options: OpenOptions = {}): Transform {
  return new AgeOpener(parseIdentities(identities), options);
}

/** A sink that authenticates an age file to its last chunk and keeps no plaintext. */
export interface AgeVerifier extends Writable {
  /** After 'finish': number of authenticated chunks and plaintext bytes. */
  readonly chunks: number;
  readonly plaintextBytes: number;
}

/**
 * `await pipeline(storedBytes, verifyStream(identities))` resolves only if the
 * whole file authenticates (same errors as openStream); plaintext is discarded.
 */
export function verifyStream(identities: readonly string[], options: OpenOptions = {}): AgeVerifier {
  const decoder = new AgeDecoder(parseIdentities(identities), () => undefined, options);
  const sink = new Writable({
    highWaterMark: ENC_CHUNK_SIZE,
    write(chunk: Buffer, _enc, done) {
      try {
        decoder.write(chunk);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    final(done) {
      try {
        decoder.end();
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  return Object.defineProperties(sink, {
    chunks: { get: () => decoder.chunks },
    plaintextBytes: { get: () => decoder.plaintextBytes },
  }) as AgeVerifier;
}
