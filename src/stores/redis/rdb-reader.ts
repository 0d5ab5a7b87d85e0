import { LifeboatError } from '../../errors';
import { Crc64 } from './crc64';

/** An RDB that does not parse or whose checksum does not match: permanent, a retry reads the same bytes. */
export class RdbError extends LifeboatError {
  constructor(message: string) {
    super('RdbCorrupt', message, true);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Pulls bytes from a stream for the RDB parser. Holds only what the parser
 * has not consumed yet (plus, while a capture is open, the bytes since its
 * start: replay needs one value's raw bytes at a time), and folds every
 * consumed byte into a running CRC-64 before it lets go of it.
 *
 * Reads are synchronous once `ensure(n)` has made `n` bytes available; the
 * parser calls `ensure` only when `avail` is short, so most fields cost no
 * promise.
 */
export class ByteReader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Absolute stream offset of buf[0]. */
  private base = 0;
  /** Bytes of buf before this index are in the CRC already. */
  private crcPos = 0;
  /** Absolute offset from which bytes are kept (-1: none). */
  private captureFrom = -1;
  private readonly crc = new Crc64();

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  static of(stream: AsyncIterable<Buffer | string>): ByteReader {
    const it = stream[Symbol.asyncIterator]();
    return new ByteReader({
      async next() {
        const r = await it.next();
        return r.done ? r : { done: false, value: typeof r.value === 'string' ? Buffer.from(r.value) : r.value };
      },
      async return() {
        await it.return?.();
        return { done: true, value: undefined };
      },
    });
  }

  /** Absolute offset of the next byte. */
  get offset(): number {
    return this.base + this.pos;
  }

  get avail(): number {
    return this.buf.length - this.pos;
  }

  /** Makes `n` bytes available, or fails: the RDB ends early. */
  async ensure(n: number): Promise<void> {
    if (this.avail >= n) return;
    if (!(await this.fill(n))) throw new RdbError(`the RDB ends early at byte ${this.offset + this.avail} (a field needs ${n - this.avail} more bytes): the stream was cut or the file is damaged`);
  }

  /** Pulls until `n` bytes are available or the stream ends; false if it ended short. */
  private async fill(n: number): Promise<boolean> {
    this.crc.update(this.buf, this.crcPos, this.pos);
    const keepFrom = this.captureFrom >= 0 ? Math.min(this.pos, this.captureFrom - this.base) : this.pos;
    const chunks = [this.buf.subarray(keepFrom)];
    let have = this.buf.length - this.pos;
    while (have < n) {
      const r = await this.source.next();
      if (r.done) break;
      if (r.value.length === 0) continue;
      chunks.push(r.value);
      have += r.value.length;
    }
    this.base += keepFrom;
    this.pos -= keepFrom;
    this.crcPos = this.pos;
    this.buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    return have >= n;
  }

  u8(): number {
    return this.buf[this.pos++]!;
  }

  /** `n` available bytes; the view stays valid (the reader never writes into a buffer it handed out). */
  take(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  async bytes(n: number): Promise<Buffer> {
    if (this.avail < n) await this.ensure(n);
    return this.take(n);
  }

  /** Skips `n` bytes without holding them (unless a capture is open). */
  async skip(n: number): Promise<void> {
    if (this.avail >= n) {
      this.pos += n;
      return;
    }
    if (this.captureFrom >= 0) {
      await this.ensure(n);
      this.pos += n;
      return;
    }
    let left = n;
    while (left > 0) {
      if (this.avail === 0) await this.ensure(1);
      const k = Math.min(left, this.avail);
      this.pos += k;
      left -= k;
    }
  }

  startCapture(): void {
    this.captureFrom = this.offset;
  }

  /** The bytes since `startCapture`. */
  endCapture(): Buffer {
    const b = this.buf.subarray(this.captureFrom - this.base, this.pos);
    this.captureFrom = -1;
    return b;
  }

  /** The CRC-64 of every byte consumed so far. */
  checksum(): Crc64 {
    this.crc.update(this.buf, this.crcPos, this.pos);
    this.crcPos = this.pos;
    return this.crc;
  }

  /** Whether the stream has nothing after what was consumed. */
  async atEnd(): Promise<boolean> {
    if (this.avail > 0) return false;
    return !(await this.fill(1));
  }

  /** Stops reading the source early. */
  async close(): Promise<void> {
    await this.source.return?.();
  }
}
