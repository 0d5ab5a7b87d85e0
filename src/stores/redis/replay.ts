import type { Redis } from 'ioredis';
import type { Readable } from 'node:stream';
import { LifeboatError } from '../../errors';
import type { StoreContext } from '../types';
import { flush, keyspace, openClient, replyError, type RedisEndpoint } from './client';
import { Crc64 } from './crc64';
import { parseRdb, type RdbKey, type RdbSummary } from './rdb-parse';
import type { RedisSettings, ReplaySettings } from './settings';

/**
 * A restore without file access: the RDB is split into its keys as it
 * streams past, and each key goes back with
 * `RESTORE key <abs ms> <payload> ABSTTL REPLACE [IDLETIME|FREQ]`, whose
 * payload is the DUMP format: the type byte and the value's bytes exactly as
 * in the RDB, the RDB version (2 bytes LE) and a CRC-64 of all that (8 bytes
 * LE). The commands are pipelined with a bounded number (and size) in flight.
 *
 * While it runs, the key `lifeboat:restore-in-progress` sits in the first
 * destination database: a retry after a crash recognises its own half-loaded
 * data by it and flushes it, while a database that holds anything else is
 * refused unless `flush: true`.
 */
export const IN_PROGRESS_KEY = 'lifeboat:restore-in-progress';

/** Payload bytes allowed in flight, beside the command count. */
const MAX_BYTES_IN_FLIGHT = 64 << 20;

export function dumpPayload(type: number, value: Buffer, rdbVersion: number): Buffer {
  const out = Buffer.allocUnsafe(1 + value.length + 10);
  out[0] = type;
  value.copy(out, 1);
  out.writeUInt16LE(rdbVersion, 1 + value.length);
  new Crc64().update(out, 0, out.length - 8).bytes().copy(out, out.length - 8);
  return out;
}

/** The databases a replay writes into (undefined: every one) and where its in-progress key goes. */
export function destinations(s: RedisSettings): { dbs: number[] | undefined; markerDb: number; from(db: number): number | undefined } {
  const r = s.restore as ReplaySettings;
  if (r.db !== undefined) return { dbs: [r.db], markerDb: r.db, from: (db) => (db === r.fromDb ? r.db : undefined) };
  const dbs = s.databases;
  return { dbs, markerDb: dbs?.[0] ?? 0, from: (db) => (!dbs || dbs.includes(db) ? db : undefined) };
}

async function emptyOrOurs(c: Redis, ep: RedisEndpoint, s: RedisSettings, target: string, ctx: StoreContext): Promise<void> {
  const r = s.restore as ReplaySettings;
  const { dbs, markerDb } = destinations(s);
  const busy = [...(await keyspace(c))].filter(([db, n]) => n > 0 && (!dbs || dbs.includes(db))).sort((a, b) => a[0] - b[0]);
  if (busy.length === 0) return;
  await c.select(markerDb);
  const ours = (await c.exists(IN_PROGRESS_KEY)) === 1;
  if (!ours && !r.flush) {
    const list = busy.map(([db, n]) => `db ${db} holds ${n} key${n === 1 ? '' : 's'}`).join(', ');
    throw new LifeboatError(
      'RestoreTargetNotEmpty',
      `${ep.where}: ${list}; a replay restore loads only into empty databases. Empty ${busy.length === 1 ? 'it' : 'them'} (FLUSHDB), or set targets.${target}.restore.flush: true to have lifeboat flush ${dbs ? `databases ${dbs.join(', ')}` : 'every database'} first. Nothing was changed`,
      true,
    );
  }
  ctx.log.warn(ours ? 'an earlier replay restore did not finish; flushing what it loaded' : 'flushing the destination before the replay (flush: true)', { target, dbs: busy.map(([db]) => db) });
  await flush(c, dbs);
}

/** Loads the RDB read from `source` into the running server. Returns the parse summary and the keys loaded and skipped. */
export async function replayRdb(ctx: StoreContext, ep: RedisEndpoint, s: RedisSettings, target: string, source: Readable): Promise<{ summary: RdbSummary; loaded: number; expired: number }> {
  const r = s.restore as ReplaySettings;
  const dest = destinations(s);
  const c = await openClient(ep, 'opening the replay connection');
  const inFlight: Array<{ p: Promise<unknown>; bytes: number }> = [];
  let bytes = 0;
  let failure: unknown;
  let version = 0;
  let selected = -1;
  let loaded = 0;
  let expired = 0;
  const select = (db: number) => {
    if (db === selected) return;
    track(c.select(db), 0);
    selected = db;
  };
  const track = (p: Promise<unknown>, n: number) => {
    p.catch((err: unknown) => (failure ??= err));
    inFlight.push({ p, bytes: n });
    bytes += n;
  };
  const drainTo = async (count: number, size: number) => {
    while (inFlight.length > count || (inFlight.length > 0 && bytes > size)) {
      const head = inFlight.shift()!;
      bytes -= head.bytes;
      await head.p.catch(() => undefined);
      if (failure) throw failure;
    }
  };
  try {
    await emptyOrOurs(c, ep, s, target, ctx);
    await c.select(dest.markerDb);
    selected = dest.markerDb;
    await c.set(IN_PROGRESS_KEY, JSON.stringify({ target, startedAt: new Date().toISOString() }));
    ctx.progress({ stage: 'restore', item: 'replay' });
    const onKey = async (k: RdbKey) => {
      const into = dest.from(k.db);
      if (into === undefined || k.value === undefined || k.key.equals(IN_PROGRESS_BUF)) return;
      if (k.expireMs !== undefined && k.expireMs <= Date.now()) {
        expired++;
        return;
      }
      select(into);
      const payload = dumpPayload(k.type, k.value, version);
      const args: Array<string | number | Buffer> = [k.key, k.expireMs ?? 0, payload];
      if (k.expireMs !== undefined) args.push('ABSTTL');
      args.push('REPLACE');
      if (k.idle !== undefined) args.push('IDLETIME', k.idle);
      else if (k.freq !== undefined) args.push('FREQ', k.freq);
      track(c.call('RESTORE', ...args), payload.length);
      loaded++;
      await drainTo(r.inFlight, MAX_BYTES_IN_FLIGHT);
    };
    const summary = await parseRdb(source, {
      header: (v) => (version = v),
      capture: (db) => dest.from(db) !== undefined,
      key: onKey,
      // Libraries are server-wide: loaded when the whole server is restored, not into one chosen database.
      func: r.db === undefined ? (code) => track(c.call('FUNCTION', 'LOAD', 'REPLACE', code), code.length) : undefined,
    });
    await drainTo(0, 0);
    await c.select(dest.markerDb);
    await c.del(IN_PROGRESS_KEY);
    return { summary, loaded, expired };
  } catch (err) {
    source.destroy();
    throw replyError(err, ep, 'replaying the RDB (RESTORE)');
  } finally {
    await Promise.allSettled(inFlight.map((f) => f.p));
    c.disconnect();
  }
}

const IN_PROGRESS_BUF = Buffer.from(IN_PROGRESS_KEY);
