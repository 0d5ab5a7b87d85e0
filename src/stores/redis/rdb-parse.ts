import { storedHex } from './crc64';
import { ByteReader, RdbError } from './rdb-reader';
import { OP, RdbParser, TYPE_NAMES } from './rdb-values';

export { TYPE_NAMES };

/**
 * A streaming RDB parser (format of Redis 2.x to 7.2, RDB versions 1-11, and
 * the opcodes of 7.4's version 12 that a standalone server writes): every
 * record is walked field by field, values are skipped (or, for replay, their
 * raw bytes kept, one value at a time), and the trailing CRC-64 is checked.
 * It never decodes listpacks, ziplists or intsets: their outer length is
 * enough to step over them, and RESTORE takes them as they are.
 */

/** The newest RDB version this parser reads. */
export const MAX_RDB_VERSION = 12;

export interface RdbKey {
  db: number;
  key: Buffer;
  /** RDB value type byte. */
  type: number;
  /** Absolute expiry, Unix milliseconds. */
  expireMs?: number;
  /** LRU idle seconds / LFU frequency, when the server keeps them. */
  idle?: number;
  freq?: number;
  /** The value's serialized bytes (without the type byte), when `capture` asked for them. */
  value?: Buffer;
}

export interface RdbHandlers {
  /** Whether to keep the raw bytes of the values of keys in `db` (replay). */
  capture?(db: number): boolean;
  key?(k: RdbKey): void | Promise<void>;
  /** A function library (Redis 7 `FUNCTION2` record): its code. */
  func?(code: Buffer): void | Promise<void>;
  /** Called as the version is known, before anything else. */
  header?(version: number): void;
}

export interface DbCount {
  keys: number;
  expires: number;
}

export interface RdbSummary {
  version: number;
  /** db -> counts, only databases with keys. */
  dbs: Map<number, DbCount>;
  types: Record<string, number>;
  functions: number;
  moduleAux: number;
  /** AUX fields, e.g. redis-ver, ctime (printable ones). */
  aux: Record<string, string>;
  /** `ok`, or `disabled` when the server wrote no checksum (rdbchecksum no, or RDB before version 5). */
  checksum: 'ok' | 'disabled';
  crc: string;
  bytes: number;
}

function isObjectType(t: number): boolean {
  return (t >= 0 && t <= 7) || (t >= 9 && t <= 25);
}

function printable(b: Buffer): string | undefined {
  return b.length <= 200 && /^[\x20-\x7e]*$/.test(b.toString('latin1')) ? b.toString('latin1') : undefined;
}

/**
 * Parses a whole RDB stream: counts keys per database, calls the handlers, and
 * checks the trailing CRC-64. Fails with an RdbError (permanent) naming the
 * byte where the RDB stopped making sense.
 */
export async function parseRdb(source: AsyncIterable<Buffer | string>, h: RdbHandlers = {}): Promise<RdbSummary> {
  const r = ByteReader.of(source);
  const p = new RdbParser(r);
  try {
    const head = await r.bytes(9).catch(() => {
      throw new RdbError('the stream is not an RDB: it is shorter than the 9-byte header');
    });
    const magic = head.toString('latin1');
    if (!/^REDIS\d{4}$/.test(magic)) throw new RdbError(`the stream is not an RDB: it starts with ${JSON.stringify(magic)} instead of REDIS followed by a 4-digit version`);
    const version = Number(magic.slice(5));
    if (version < 1 || version > MAX_RDB_VERSION) throw new RdbError(`RDB version ${version} is not one this lifeboat reads (1-${MAX_RDB_VERSION}); upgrade lifeboat`);
    h.header?.(version);
    const s: RdbSummary = { version, dbs: new Map(), types: {}, functions: 0, moduleAux: 0, aux: {}, checksum: 'disabled', crc: '', bytes: 0 };
    let db = 0;
    let expireMs: number | undefined;
    let idle: number | undefined;
    let freq: number | undefined;
    for (;;) {
      if (r.avail < 1) await r.ensure(1);
      const op = r.u8();
      if (op === OP.EOF) break;
      switch (op) {
        case OP.AUX: {
          const k = (await p.str()).toString('latin1');
          const v = printable(await p.str());
          if (v !== undefined) s.aux[k] = v;
          continue;
        }
        case OP.SELECTDB:
          db = await p.len();
          continue;
        case OP.RESIZEDB:
          await p.len();
          await p.len();
          continue;
        case OP.EXPIRETIME:
          expireMs = (await r.bytes(4)).readInt32LE(0) * 1000;
          continue;
        case OP.EXPIRETIME_MS:
          expireMs = Number((await r.bytes(8)).readBigInt64LE(0));
          continue;
        case OP.IDLE:
          idle = await p.len();
          continue;
        case OP.FREQ:
          freq = (await r.bytes(1))[0]!;
          continue;
        case OP.MODULE_AUX:
          await p.len(); // module id
          await p.len(); // when opcode
          await p.len(); // when
          await p.skipModuleValue();
          s.moduleAux++;
          continue;
        case OP.FUNCTION2: {
          const code = await p.str();
          s.functions++;
          const w = h.func?.(code);
          if (w) await w;
          continue;
        }
        case OP.SLOT_INFO:
          for (let i = 0; i < 3; i++) await p.len();
          continue;
        case OP.FUNCTION_PRE_GA:
          throw new RdbError(`the RDB holds functions in the format of Redis 7.0 release candidates (byte ${r.offset - 1}), which no released Redis reads`);
      }
      if (!isObjectType(op)) throw new RdbError(`unknown record type ${op} at byte ${r.offset - 1}: the RDB is damaged`);
      const key = await p.str();
      const capture = h.capture?.(db) ?? false;
      if (capture) r.startCapture();
      await p.skipValue(op);
      const value = capture ? r.endCapture() : undefined;
      const c = s.dbs.get(db) ?? { keys: 0, expires: 0 };
      c.keys++;
      if (expireMs !== undefined) c.expires++;
      s.dbs.set(db, c);
      const tn = TYPE_NAMES[op] ?? `type ${op}`;
      s.types[tn] = (s.types[tn] ?? 0) + 1;
      const w = h.key?.({ db, key, type: op, expireMs, idle, freq, value });
      if (w) await w;
      expireMs = idle = freq = undefined;
    }
    if (version >= 5) {
      const computed = r.checksum();
      const stored = await r.bytes(8).catch(() => {
        throw new RdbError(`the RDB ends in its checksum at byte ${r.offset}: the stream was cut`);
      });
      if (stored.some((b) => b !== 0)) {
        if (!computed.bytes().equals(stored)) {
          throw new RdbError(`the RDB's CRC-64 does not match: stored ${storedHex(stored)}, computed ${computed.hex()} over ${r.offset - 8} bytes; the RDB is damaged`);
        }
        s.checksum = 'ok';
      }
      s.crc = storedHex(stored);
    }
    s.bytes = r.offset;
    if (!(await r.atEnd())) throw new RdbError(`the RDB has bytes after its end (at byte ${r.offset}): the stream holds more than one RDB or is damaged`);
    return s;
  } finally {
    await r.close();
  }
}

/** One line for `verify`: version, keys per database, functions, checksum. */
export function describeRdb(s: RdbSummary): string {
  const dbs = [...s.dbs.entries()].sort((a, b) => a[0] - b[0]);
  const keys = dbs.reduce((n, [, c]) => n + c.keys, 0);
  const perDb = dbs.map(([db, c]) => `db${db} ${c.keys}${c.expires ? ` (${c.expires} with TTL)` : ''}`).join(', ');
  const from = s.aux['redis-ver'] ? ` from Redis ${s.aux['redis-ver']}` : '';
  const extra = [s.functions ? `${s.functions} function librar${s.functions === 1 ? 'y' : 'ies'}` : '', s.moduleAux ? `${s.moduleAux} module aux records` : ''].filter(Boolean).join(', ');
  const sum = s.checksum === 'ok' ? `CRC-64 ok (${s.crc})` : 'no checksum (written with rdbchecksum no)';
  return `RDB version ${s.version}${from}: ${keys} keys${perDb ? ` in ${perDb}` : ''}${extra ? `; ${extra}` : ''}; ${sum}; ${s.bytes} bytes`;
}
