import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { LifeboatError } from '../errors';

/**
 * Per-block SHA-256 of an artifact's stored bytes. The backup lists each
 * block's digest in an object beside the artifact and records the list's own
 * SHA-256 in the (signed) manifest; a restore that must not run a single
 * unauthenticated byte can then check each block as it arrives instead of
 * reading the whole artifact once before it starts.
 */

/** 4 MiB of stored bytes: the most a gate holds back, and 65 bytes of list per block (~16 KiB per GiB). */
export const BLOCK_SIZE = 4 << 20;

/** Splits a stream into blocks of `size` and hashes each one, whatever the chunks' sizes. */
abstract class Blocks extends Transform {
  private hash: Hash = createHash('sha256');
  /** The current block's chunks, held until it is complete. */
  private held: Buffer[] = [];
  private filled = 0;
  protected index = 0;

  constructor(protected readonly size: number) {
    super();
  }

  /** Called with each block's digest and the chunks that make it up; an error stops the stream. */
  protected abstract block(digest: string, chunks: Buffer[]): Error | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(this.size - this.filled, chunk.length - off);
      const part = off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take);
      this.hash.update(part);
      this.held.push(part);
      this.filled += take;
      off += take;
      if (this.filled === this.size) {
        const err = this.close();
        if (err) return done(err);
      }
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    done((this.filled > 0 ? this.close() : undefined) ?? this.atEnd());
  }

  /** At the end of the stream, after the last block: an error if something is missing. */
  protected atEnd(): Error | undefined {
    return undefined;
  }

  private close(): Error | undefined {
    const chunks = this.held;
    const digest = this.hash.digest('hex');
    this.hash = createHash('sha256');
    this.held = [];
    this.filled = 0;
    const err = this.block(digest, chunks);
    this.index++;
    return err;
  }
}

/** Passes bytes through unchanged and collects each block's SHA-256 (`list()` once the stream has ended). */
export class BlockHasher extends Blocks {
  private readonly digests: string[] = [];

  constructor(size = BLOCK_SIZE) {
    super(size);
  }

  protected block(digest: string, chunks: Buffer[]): undefined {
    this.digests.push(digest);
    for (const c of chunks) this.push(c);
    return undefined;
  }

  /** The list as stored: one hex digest per line. */
  list(): string {
    return this.digests.map((d) => `${d}\n`).join('');
  }
}

/**
 * Holds each block back until its SHA-256 is the listed one, so what comes out
 * is only bytes the backup wrote, in order; fails on the first block that is
 * not, and when the stream ends early or runs long.
 */
export class BlockGate extends Blocks {
  constructor(
    private readonly url: string,
    size: number,
    private readonly digests: readonly string[],
  ) {
    super(size);
  }

  protected block(digest: string, chunks: Buffer[]): Error | undefined {
    const want = this.digests[this.index];
    if (want === undefined) return new LifeboatError('ChecksumMismatch', `artifact '${this.url}' is longer than the ${this.digests.length} blocks the backup listed; what follows them was not restored`);
    if (digest !== want) {
      return new LifeboatError('ChecksumMismatch', `artifact '${this.url}' failed its checksum at block ${this.index + 1} of ${this.digests.length} (bytes from ${this.index * this.size}); nothing after it was restored`);
    }
    for (const c of chunks) this.push(c);
    return undefined;
  }

  protected override atEnd(): Error | undefined {
    if (this.index === this.digests.length) return undefined;
    return new LifeboatError('ChecksumMismatch', `artifact '${this.url}' ends after ${this.index} of the ${this.digests.length} blocks the backup listed; the restore is incomplete`);
  }
}

/**
 * Reads a stored block list and proves it is the one the manifest names (its
 * SHA-256) and that it covers `bytes` in blocks of `size`. Returns the digests.
 */
export function parseBlockList(text: string, expected: { size: number; sha256: string }, bytes: number, url: string): string[] {
  const got = createHash('sha256').update(text).digest('hex');
  if (got !== expected.sha256) throw new LifeboatError('ChecksumMismatch', `block list '${url}' failed its checksum (expected ${expected.sha256}, got ${got})`);
  const digests = text === '' ? [] : text.slice(0, -1).split('\n');
  const count = Math.ceil(bytes / expected.size);
  if (digests.length !== count || (text !== '' && !text.endsWith('\n'))) {
    throw new LifeboatError('ManifestInvalid', `block list '${url}' has ${digests.length} blocks, but ${bytes} bytes in blocks of ${expected.size} make ${count}`);
  }
  return digests;
}
