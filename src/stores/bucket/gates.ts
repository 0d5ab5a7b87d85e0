import { createHash } from 'node:crypto';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { LifeboatError } from '../../errors';

/**
 * Pass-through checks that fail at the end of the stream, before it ends
 * cleanly, so an upload fed by them is aborted instead of completed.
 */

/** Exactly `expected` bytes went through. */
export class SizeGate extends Transform {
  bytes = 0;
  constructor(
    private readonly expected: number,
    private readonly what: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    if (this.bytes === this.expected) done();
    else done(new LifeboatError('SizeMismatch', `${this.what}: expected ${this.expected} bytes, got ${this.bytes}`, false));
  }
}

/** The stored bytes of a pool object are the ones its backup's index names (size and SHA-256). */
export class StoredGate extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  constructor(
    private readonly url: string,
    private readonly expected: { stored: number; sha256: string },
  ) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    const got = this.hash.digest('hex');
    if (got === this.expected.sha256 && this.bytes === this.expected.stored) done();
    else {
      done(
        new LifeboatError(
          'ChecksumMismatch',
          `pool object '${this.url}' failed its checksum (expected ${this.expected.sha256} / ${this.expected.stored} bytes, got ${got} / ${this.bytes} bytes); it was not restored`,
        ),
      );
    }
  }
}

/** Keeps what it is written, for bodies small enough to PUT in one request. */
export class Collect extends Writable {
  private readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, done: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    done();
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}
