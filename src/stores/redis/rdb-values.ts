import { lzfDecompress } from './lzf';
import { ByteReader, RdbError } from './rdb-reader';

/**
 * Walking one RDB value field by field, without decoding it: lengths,
 * strings (integers, LZF), and the layout of every value type, so the parser
 * can step over a value (or keep its raw bytes for RESTORE). Listpacks,
 * ziplists and intsets are single strings here: RESTORE takes them as they are.
 */

/** Value types (rdb.h, RDB_TYPE_*). */
export const T = {
  STRING: 0, LIST: 1, SET: 2, ZSET: 3, HASH: 4, ZSET_2: 5, MODULE_PRE_GA: 6, MODULE_2: 7,
  HASH_ZIPMAP: 9, LIST_ZIPLIST: 10, SET_INTSET: 11, ZSET_ZIPLIST: 12, HASH_ZIPLIST: 13, LIST_QUICKLIST: 14,
  STREAM_LISTPACKS: 15, HASH_LISTPACK: 16, ZSET_LISTPACK: 17, LIST_QUICKLIST_2: 18, STREAM_LISTPACKS_2: 19,
  SET_LISTPACK: 20, STREAM_LISTPACKS_3: 21,
} as const;
/** Types stored as one string (a ziplist, listpack, intset or zipmap blob). */
const BLOB_TYPES = new Set<number>([T.HASH_ZIPMAP, T.LIST_ZIPLIST, T.SET_INTSET, T.ZSET_ZIPLIST, T.HASH_ZIPLIST, T.HASH_LISTPACK, T.ZSET_LISTPACK, T.SET_LISTPACK]);

/** Opcodes (rdb.h, RDB_OPCODE_*). */
export const OP = { SLOT_INFO: 244, FUNCTION2: 245, FUNCTION_PRE_GA: 246, MODULE_AUX: 247, IDLE: 248, FREQ: 249, AUX: 250, RESIZEDB: 251, EXPIRETIME_MS: 252, EXPIRETIME: 253, SELECTDB: 254, EOF: 255 } as const;

export const MODULE_OP = { EOF: 0, SINT: 1, UINT: 2, FLOAT: 3, DOUBLE: 4, STRING: 5 } as const;

export const TYPE_NAMES: Record<number, string> = {
  0: 'string', 1: 'list', 2: 'set', 3: 'zset', 4: 'hash', 5: 'zset', 7: 'module', 9: 'hash', 10: 'list', 11: 'set', 12: 'zset', 13: 'hash',
  14: 'list', 15: 'stream', 16: 'hash', 17: 'zset', 18: 'list', 19: 'stream', 20: 'set', 21: 'stream',
};

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

