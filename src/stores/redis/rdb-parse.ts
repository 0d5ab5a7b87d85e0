import { storedHex } from './crc64';
import { lzfDecompress } from './lzf';
import { ByteReader, RdbError } from './rdb-reader';

/**
 * A streaming RDB parser (format of Redis 2.x to 7.2, RDB versions 1-11, and
 * the opcodes of 7.4's version 12 that a standalone server writes): every
 * record is walked field by field, values are skipped (or, for replay, their
 * raw bytes kept, one value at a time), and the trailing CRC-64 is checked.
 * It never decodes listpacks, ziplists or intsets: their outer length is
 * enough to step over them, and RESTORE takes them as they are.
 */

/** Value types (rdb.h, RDB_TYPE_*). */
const T = {
  STRING: 0, LIST: 1, SET: 2, ZSET: 3, HASH: 4, ZSET_2: 5, MODULE_PRE_GA: 6, MODULE_2: 7,
  HASH_ZIPMAP: 9, LIST_ZIPLIST: 10, SET_INTSET: 11, ZSET_ZIPLIST: 12, HASH_ZIPLIST: 13, LIST_QUICKLIST: 14,
  STREAM_LISTPACKS: 15, HASH_LISTPACK: 16, ZSET_LISTPACK: 17, LIST_QUICKLIST_2: 18, STREAM_LISTPACKS_2: 19,
  SET_LISTPACK: 20, STREAM_LISTPACKS_3: 21,
} as const;
/** Types stored as one string (a ziplist, listpack, intset or zipmap blob). */
const BLOB_TYPES = new Set<number>([T.HASH_ZIPMAP, T.LIST_ZIPLIST, T.SET_INTSET, T.ZSET_ZIPLIST, T.HASH_ZIPLIST, T.HASH_LISTPACK, T.ZSET_LISTPACK, T.SET_LISTPACK]);

/** Opcodes (rdb.h, RDB_OPCODE_*). */
const OP = { SLOT_INFO: 244, FUNCTION2: 245, FUNCTION_PRE_GA: 246, MODULE_AUX: 247, IDLE: 248, FREQ: 249, AUX: 250, RESIZEDB: 251, EXPIRETIME_MS: 252, EXPIRETIME: 253, SELECTDB: 254, EOF: 255 } as const;

const MODULE_OP = { EOF: 0, SINT: 1, UINT: 2, FLOAT: 3, DOUBLE: 4, STRING: 5 } as const;

export const TYPE_NAMES: Record<number, string> = {
  0: 'string', 1: 'list', 2: 'set', 3: 'zset', 4: 'hash', 5: 'zset', 7: 'module', 9: 'hash', 10: 'list', 11: 'set', 12: 'zset', 13: 'hash',
  14: 'list', 15: 'stream', 16: 'hash', 17: 'zset', 18: 'list', 19: 'stream', 20: 'set', 21: 'stream',
};

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

export class RdbParser {
  private encoded = false;

  constructor(private readonly r: ByteReader) {}

  /** A length; `encoded` tells a special string encoding (then the value is the encoding kind). */
  async len(): Promise<number> {
    const r = this.r;
    if (r.avail < 1) await r.ensure(1);
    const b = r.u8();
    const kind = b >> 6;
    this.encoded = false;
    if (kind === 0) return b & 0x3f;
    if (kind === 1) {
      if (r.avail < 1) await r.ensure(1);
      return ((b & 0x3f) << 8) | r.u8();
    }
    if (kind === 3) {
      this.encoded = true;
      return b & 0x3f;
    }
    if (b === 0x80) return (await r.bytes(4)).readUInt32BE(0);
    if (b === 0x81) {
      const v = (await r.bytes(8)).readBigUInt64BE(0);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RdbError(`length ${v} at byte ${r.offset - 9} is not plausible: the RDB is damaged`);
      return Number(v);
    }
    throw new RdbError(`unknown length encoding 0x${b.toString(16)} at byte ${r.offset - 1}: the RDB is damaged`);
  }

  /** A string, decoded (integers as decimal text, LZF decompressed). */
  async str(): Promise<Buffer> {
    const n = await this.len();
    if (!this.encoded) return this.r.bytes(n);
    switch (n) {
      case 0:
        return Buffer.from(String((await this.r.bytes(1)).readInt8(0)));
      case 1:
        return Buffer.from(String((await this.r.bytes(2)).readInt16LE(0)));
      case 2:
        return Buffer.from(String((await this.r.bytes(4)).readInt32LE(0)));
      case 3: {
        const clen = await this.len();
        const ulen = await this.len();
        return lzfDecompress(await this.r.bytes(clen), ulen);
      }
      default:
        throw new RdbError(`unknown string encoding ${n} at byte ${this.r.offset - 1}: the RDB is damaged`);
    }
  }

  async skipStr(): Promise<void> {
    const n = await this.len();
    if (!this.encoded) return this.r.skip(n);
    if (n === 0 || n === 1 || n === 2) return this.r.skip(n === 2 ? 4 : n + 1);
    if (n !== 3) throw new RdbError(`unknown string encoding ${n} at byte ${this.r.offset - 1}: the RDB is damaged`);
    const clen = await this.len();
    await this.len();
    return this.r.skip(clen);
  }

  private async skipStrs(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.skipStr();
  }

  /** A module value in its self-describing form (RDB_TYPE_MODULE_2, MODULE_AUX). */
  async skipModuleValue(): Promise<void> {
    for (;;) {
      const op = await this.len();
      if (op === MODULE_OP.EOF) return;
      if (op === MODULE_OP.SINT || op === MODULE_OP.UINT) await this.len();
      else if (op === MODULE_OP.STRING) await this.skipStr();
      else if (op === MODULE_OP.FLOAT) await this.r.skip(4);
      else if (op === MODULE_OP.DOUBLE) await this.r.skip(8);
      else throw new RdbError(`unknown module value opcode ${op} at byte ${this.r.offset}: the RDB is damaged`);
    }
  }

  async skipValue(type: number): Promise<void> {
    if (type === T.STRING || BLOB_TYPES.has(type)) return this.skipStr();
    switch (type) {
      case T.LIST:
      case T.SET:
      case T.LIST_QUICKLIST:
        return this.skipStrs(await this.len());
      case T.HASH:
        return this.skipStrs(2 * (await this.len()));
      case T.ZSET: {
        const n = await this.len();
        for (let i = 0; i < n; i++) {
          await this.skipStr();
          // A score as text: one length byte, 253-255 meaning nan/+inf/-inf.
          const dl = (await this.r.bytes(1))[0]!;
          if (dl < 253) await this.r.skip(dl);
        }
        return;
      }
      case T.ZSET_2: {
        const n = await this.len();
        for (let i = 0; i < n; i++) {
          await this.skipStr();
          await this.r.skip(8);
        }
        return;
      }
      case T.LIST_QUICKLIST_2: {
        const n = await this.len();
        for (let i = 0; i < n; i++) {
          await this.len(); // container: plain or packed
          await this.skipStr();
        }
        return;
      }
      case T.MODULE_2:
        await this.len(); // module id
        return this.skipModuleValue();
      case T.STREAM_LISTPACKS:
      case T.STREAM_LISTPACKS_2:
      case T.STREAM_LISTPACKS_3:
        return this.skipStream(type);
      case T.MODULE_PRE_GA:
        throw new RdbError(`a key at byte ${this.r.offset} holds a module value in the pre-release format of Redis 4.0 release candidates, which cannot be read without its module`);
      default:
        if (type >= 22 && type <= 25) throw new RdbError(`a key at byte ${this.r.offset} is a hash with field expiry (Redis 7.4 or newer, value type ${type}), which this lifeboat does not read yet`);
        throw new RdbError(`unknown value type ${type} at byte ${this.r.offset - 1}: the RDB is damaged or from a newer Redis`);
    }
  }

  private async skipStream(type: number): Promise<void> {
    const listpacks = await this.len();
    await this.skipStrs(2 * listpacks); // master id + listpack each
    await this.len(); // items
    await this.len(); // last id ms
    await this.len(); // last id seq
    if (type >= T.STREAM_LISTPACKS_2) for (let i = 0; i < 5; i++) await this.len(); // first id, max deleted id, entries added
    const groups = await this.len();
    for (let g = 0; g < groups; g++) {
      await this.skipStr(); // name
      await this.len(); // last id ms
      await this.len(); // last id seq
      if (type >= T.STREAM_LISTPACKS_2) await this.len(); // entries read
      const pel = await this.len();
      for (let p = 0; p < pel; p++) {
        await this.r.skip(16 + 8); // raw id, delivery time
        await this.len(); // delivery count
      }
      const consumers = await this.len();
      for (let c = 0; c < consumers; c++) {
        await this.skipStr(); // name
        await this.r.skip(type >= T.STREAM_LISTPACKS_3 ? 16 : 8); // seen time (+ active time)
        const own = await this.len();
        await this.r.skip(16 * own);
      }
    }
  }
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
