import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError } from '../../errors';
import type { StoreContext } from '../types';
import { rows, type InfluxHttp } from './http';

/** How long a restore waits for the server to load the shards influxd sent it. */
const LOAD_WAIT_MS = 5 * 60 * 1000;
const LOAD_POLL_MS = 250;

/** The open shards of `db` and their bytes on disk (TSM and WAL), from `SHOW STATS`: a closed shard has no statistics. */
async function openShards(h: InfluxHttp, db: string, ctx: StoreContext): Promise<Map<string, number>> {
  const stats = await h.query({ q: "SHOW STATS FOR 'shard'", what: `reading the shards of ${db}`, signal: ctx.signal });
  return new Map(stats.filter((s) => s.tags?.database === db).map((s) => [String(s.tags!.id), Number(s.values?.[0]?.[s.columns.indexOf('diskBytes')] ?? 0)]));
}

const denied = (err: unknown) => (err as { type?: string }).type === 'PermissionDenied';

/** About what a backup of `db` takes in the spool: its shards' bytes on disk. Undefined when the user may not read statistics. */
export async function diskBytes(h: InfluxHttp, db: string, ctx: StoreContext, target: string): Promise<number | undefined> {
  try {
    return [...(await openShards(h, db, ctx)).values()].reduce((n, b) => n + b, 0);
  } catch (err) {
    if (!denied(err)) throw err;
    ctx.log.warn('cannot read shard sizes (SHOW STATS needs an admin user): the spool folder is not checked for room beforehand', { target });
    return undefined;
  }
}

/**
 * `influxd restore` exits once it has sent the last shard, before the server
 * has written it, closed and reopened it: a query in between fails with
 * "engine is closed", or finds the shard empty. This waits until every shard
 * of `db` is open and at least `withData` of them hold data (the backup's
 * shards with TSM files).
 */
export async function waitLoaded(h: InfluxHttp, db: string, withData: number, ctx: StoreContext, target: string): Promise<void> {
  const deadline = Date.now() + LOAD_WAIT_MS;
  for (;;) {
    try {
      const all = rows(await h.query({ q: 'SHOW SHARDS', what: `listing the shards of ${db}`, signal: ctx.signal })).filter((r) => r.database === db);
      const open = await openShards(h, db, ctx);
      const loaded = [...open.values()].filter((b) => b > 0).length;
      if (all.every((r) => open.has(String(r.id))) && loaded >= withData) return;
      if (Date.now() > deadline) {
        throw new LifeboatError('RestoreIncomplete', `the server of target ${target} has not loaded the restored shards of ${db} within ${LOAD_WAIT_MS / 60000} minutes (${open.size} of ${all.length} open, ${loaded} of ${withData} with data); see its log`, false);
      }
    } catch (err) {
      if (!denied(err)) throw err;
      ctx.log.warn(`cannot tell when the server has loaded the restored shards of ${db} (SHOW STATS and SHOW SHARDS need an admin user)`, { target });
      return;
    }
    await sleep(LOAD_POLL_MS, undefined, { signal: ctx.signal });
  }
}
