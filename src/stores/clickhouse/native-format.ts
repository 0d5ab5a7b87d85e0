import { Transform, type TransformCallback } from 'node:stream';
import { LifeboatError } from '../../errors';
import { findTrailingException } from './errors';
import { layoutOf, lowCardinalities, type Layout } from './native-types';

type Frame =
  | { t: 'block' }
  | { t: 'columns'; left: number; rows: number }
  | { t: 'column'; layout: Layout; rows: number }
  | { t: 'skip'; n: number }
  | { t: 'strings'; left: number }
  | { t: 'lastOffset'; inner: Layout }
  | { t: 'lowcard'; dict: Layout; phase: 'type' | 'keys' | 'rows'; indexSize: number };

const EXCEPTION_MARK = Buffer.from('Code: ');
const MAX_CARRY = 16 * 1024 * 1024;
const TAIL = 8 * 1024;

/**
 * Follows a Native stream block by block without keeping it, and fails unless
 * it ends exactly at a block boundary. ClickHouse reports an error that occurs
 * after it has sent the 200 status by writing `Code: NNN, …` into the body and
 * ending the response normally; this is how such a response is told apart
 * from a complete one. Fixed-width columns are skipped by arithmetic, so the
 * cost is per block and per string value, not per byte.
 */
export class NativeValidator {
  private stack: Frame[] = [{ t: 'block' }];
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private columns = -1;
  private exception: Buffer[] | null = null;
  private exceptionBytes = 0;
  /** The last bytes seen (at least TAIL once there were that many), to quote an appended exception. */
  private readonly tail = Buffer.alloc(2 * TAIL);
  private tailLen = 0;
  /** Total bytes and blocks seen. */
  bytes = 0;
  blocks = 0;
  rows = 0;

  constructor(private readonly what: string) {}

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.keepTail(chunk);
    if (this.exception) {
      this.exception.push(chunk);
      this.exceptionBytes += chunk.length;
      if (this.exceptionBytes > 64 * 1024) this.end();
      return;
    }
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
    this.run();
    if (this.buf.length - this.pos > MAX_CARRY) this.fail('a value header larger than 16 MiB (not a Native stream?)');
  }

  private keepTail(chunk: Buffer): void {
    if (chunk.length >= TAIL) {
      chunk.copy(this.tail, 0, chunk.length - TAIL);
      this.tailLen = TAIL;
      return;
    }
    if (this.tailLen + chunk.length > this.tail.length) {
      this.tail.copy(this.tail, 0, this.tailLen - TAIL, this.tailLen);
      this.tailLen = TAIL;
    }
    chunk.copy(this.tail, this.tailLen);
    this.tailLen += chunk.length;
  }

  /** Throws unless the stream ended cleanly after a whole block. */
  end(): void {
    if (this.exception) {
      const text = Buffer.concat(this.exception).toString('utf8');
      const found = findTrailingException(Buffer.from(text)) ?? { text: text.slice(0, 2000) };
      throw new LifeboatError('StreamFailed', `${this.what} failed after ${this.blocks} blocks (${this.bytes} bytes): the server reported Code ${found.code ?? '?'}: ${found.text}`, false);
    }
    const top = this.stack[this.stack.length - 1];
    if (this.stack.length !== 1 || top?.t !== 'block' || this.pos < this.buf.length) this.fail('the response ended inside a block');
  }

  private fail(why: string): never {
    const trailing = findTrailingException(this.tail.subarray(0, this.tailLen));
    const said = trailing ? `; the server reported Code ${trailing.code ?? '?'}: ${trailing.text}` : '';
    throw new LifeboatError('StreamFailed', `${this.what}: the Native stream is incomplete or damaged after ${this.bytes} bytes, ${this.blocks} whole blocks (${why})${said}`, false);
  }

  private varint(): number | undefined {
    let v = 0;
    let mul = 1;
    for (let i = this.pos; i < this.buf.length && i < this.pos + 10; i++) {
      const b = this.buf[i]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        this.pos = i + 1;
        return v;
      }
      mul *= 128;
    }
    if (this.buf.length - this.pos >= 10) this.fail('a length prefix longer than 10 bytes');
    return undefined;
  }

  private string(): string | undefined {
    const start = this.pos;
    const n = this.varint();
    if (n === undefined) return undefined;
    if (this.pos + n > this.buf.length) {
      this.pos = start;
      return undefined;
    }
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  private run(): void {
    for (;;) {
      const f = this.stack[this.stack.length - 1]!;
      switch (f.t) {
        case 'skip': {
          const take = Math.min(f.n, this.buf.length - this.pos);
          this.pos += take;
          f.n -= take;
          if (f.n > 0) return;
          this.stack.pop();
          break;
        }
        case 'strings': {
          const buf = this.buf;
          while (f.left > 0) {
            const len = this.varint();
            if (len === undefined) return;
            f.left--;
            if (this.pos + len > buf.length) {
              this.stack.push({ t: 'skip', n: len - (buf.length - this.pos) });
              this.pos = buf.length;
              return;
            }
            this.pos += len;
          }
          this.stack.pop();
          break;
        }
        case 'column': {
          this.stack.pop();
          this.expand(f.layout, f.rows);
          break;
        }
        case 'lastOffset': {
          if (this.buf.length - this.pos < 8) return;
          const total = Number(this.buf.readBigUInt64LE(this.pos));
          this.pos += 8;
          this.stack.pop();
          if (!Number.isSafeInteger(total)) this.fail('an array offset out of range');
          if (total > 0) this.stack.push({ t: 'column', layout: f.inner, rows: total });
          break;
        }
        case 'lowcard': {
          if (this.buf.length - this.pos < 8) return;
          const v = Number(this.buf.readBigUInt64LE(this.pos));
          this.pos += 8;
          if (f.phase === 'type') {
            // Low byte: index width; bit 8: a shared dictionary (never in Native output); bit 9: keys follow.
            if (v & (1 << 8) || (v & 0xff) > 3) this.fail(`a LowCardinality column with index type 0x${v.toString(16)}, which lifeboat cannot follow`);
            f.indexSize = 1 << (v & 0xff);
            f.phase = v & (1 << 9) ? 'keys' : 'rows';
          } else if (f.phase === 'keys') {
            f.phase = 'rows';
            if (v > 0) this.stack.push({ t: 'column', layout: f.dict, rows: v });
          } else {
            this.stack.pop();
            this.stack.push({ t: 'skip', n: v * f.indexSize });
          }
          break;
        }
        case 'columns': {
          if (f.left === 0) {
            this.stack.pop();
            this.blocks++;
            this.rows += f.rows;
            this.stack.push({ t: 'block' });
            break;
          }
          const start = this.pos;
          const name = this.string();
          const type = name === undefined ? undefined : this.string();
          if (type === undefined) {
            this.pos = start;
            return;
          }
          const layout = layoutOf(type);
          if (!layout) this.fail(`column ${JSON.stringify(name)} has type ${type}, which lifeboat cannot follow`);
          f.left--;
          if (f.rows > 0) {
            this.stack.push({ t: 'column', layout, rows: f.rows });
            // Each LowCardinality in the type writes an 8-byte version before any of the column's data.
            const prefixes = lowCardinalities(layout);
            if (prefixes > 0) this.stack.push({ t: 'skip', n: 8 * prefixes });
          }
          break;
        }
        case 'block': {
          const avail = this.buf.length - this.pos;
          if (avail === 0) return;
          const head = this.buf.subarray(this.pos, this.pos + EXCEPTION_MARK.length);
          if (EXCEPTION_MARK.subarray(0, head.length).equals(head)) {
            if (head.length < EXCEPTION_MARK.length) return;
            this.exception = [this.buf.subarray(this.pos)];
            this.pos = this.buf.length;
            return;
          }
          const start = this.pos;
          const cols = this.varint();
          const rows = cols === undefined ? undefined : this.varint();
          if (rows === undefined) {
            this.pos = start;
            return;
          }
          if (this.columns >= 0 && cols !== this.columns) this.fail(`a block with ${cols} columns after blocks with ${this.columns}`);
          this.columns = cols!;
          this.stack.pop();
          this.stack.push({ t: 'columns', left: cols!, rows });
          break;
        }
      }
    }
  }

  private expand(layout: Layout, rows: number): void {
    switch (layout.k) {
      case 'fixed':
        this.stack.push({ t: 'skip', n: layout.size * rows });
        return;
      case 'string':
        this.stack.push({ t: 'strings', left: rows });
        return;
      case 'nullable':
        this.stack.push({ t: 'column', layout: layout.inner, rows }, { t: 'skip', n: rows });
        return;
      case 'array':
        this.stack.push({ t: 'lastOffset', inner: layout.inner }, { t: 'skip', n: (rows - 1) * 8 });
        return;
      case 'tuple':
        for (let i = layout.items.length - 1; i >= 0; i--) this.stack.push({ t: 'column', layout: layout.items[i]!, rows });
        return;
      case 'lowcard':
        this.stack.push({ t: 'lowcard', dict: layout.dict, phase: 'type', indexSize: 0 });
        return;
    }
  }
}


/**
 * A pass-through that fails the stream unless it is a complete Native stream
 * (see NativeValidator). With `follow: false` it only counts bytes: for
 * results the server buffered whole (wait_end_of_query), whose errors arrive
 * as HTTP errors instead.
 */
export function nativeCheck(what: string, opts: { follow: boolean; onBytes?: (bytes: number) => void }): Transform {
  const v = new NativeValidator(what);
  let bytes = 0;
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      bytes += chunk.length;
      try {
        if (opts.follow) v.push(chunk);
      } catch (err) {
        done(err as Error);
        return;
      }
      opts.onBytes?.(bytes);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      try {
        if (opts.follow) v.end();
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
}
