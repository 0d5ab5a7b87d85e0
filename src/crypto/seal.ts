/** Plaintext in, age file out, one 64 KiB chunk of memory at a time. */
import { createCipheriv, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { LifeboatError } from '../errors';
import { buildHeader } from './header';
import { CHUNK_SIZE, ENC_CHUNK_SIZE, FILE_KEY_SIZE, hkdf, PAYLOAD_NONCE_SIZE, streamNonce, TAG_SIZE } from './format';
import { parseRecipient, type X25519Recipient } from './keys';

class AgeSealer extends Transform {
  private readonly fileKey = randomBytes(FILE_KEY_SIZE);
  private readonly payloadNonce = randomBytes(PAYLOAD_NONCE_SIZE);
  private readonly payloadKey = hkdf(this.fileKey, this.payloadNonce, 'payload');
  private readonly nonce = Buffer.alloc(12);
  // Plaintext waits here until we know whether more follows: only then can a
  // full chunk be sealed, because the final chunk's nonce carries a flag.
  private readonly pending = Buffer.allocUnsafe(CHUNK_SIZE);
  private fill = 0;
  private counter = 0;
  private started = false;

  constructor(private readonly recipients: readonly X25519Recipient[]) {
    super({ readableHighWaterMark: 4 * ENC_CHUNK_SIZE, writableHighWaterMark: CHUNK_SIZE });
  }

  private start(): void {
    this.started = true;
    this.push(Buffer.concat([buildHeader(this.recipients, this.fileKey), this.payloadNonce]));
    this.fileKey.fill(0);
  }

  private seal(plaintext: Buffer, last: boolean): void {
    const cipher = createCipheriv('chacha20-poly1305', this.payloadKey, streamNonce(this.nonce, this.counter, last), { authTagLength: TAG_SIZE });
    const out = Buffer.allocUnsafe(plaintext.length + TAG_SIZE);
    const ct = cipher.update(plaintext);
    ct.copy(out);
    cipher.final();
    cipher.getAuthTag().copy(out, plaintext.length);
    this.counter++;
    this.push(out);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      if (!this.started) this.start();
      let off = 0;
      while (off < chunk.length) {
        if (this.fill === CHUNK_SIZE) {
          this.seal(this.pending, false);
          this.fill = 0;
        }
        if (this.fill === 0 && chunk.length - off > CHUNK_SIZE) {
          // A whole chunk with at least one byte after it: seal it in place, no copy.
          this.seal(chunk.subarray(off, off + CHUNK_SIZE), false);
          off += CHUNK_SIZE;
          continue;
        }
        const n = Math.min(CHUNK_SIZE - this.fill, chunk.length - off);
        chunk.copy(this.pending, this.fill, off, off + n);
        this.fill += n;
        off += n;
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (!this.started) this.start();
      // The final chunk is empty only when the whole plaintext is.
      this.seal(this.pending.subarray(0, this.fill), true);
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/**
 * A Transform that encrypts its input to the age format for every recipient
 * (`age1…`): anyone holding one matching identity can decrypt it, with
 * lifeboat or the stock `age -d`. Recipients are validated now, so a bad one
 * throws AgeBadKey before any byte flows. Memory is bounded by one chunk.
 */
export function sealStream(recipients: readonly string[]): Transform {
  if (recipients.length === 0) {
    throw new LifeboatError('AgeBadKey', 'no age recipient given: sealing needs at least one X25519 recipient (age1…), e.g. from lifeboat keygen');
  }
  return new AgeSealer(recipients.map(parseRecipient));
}
