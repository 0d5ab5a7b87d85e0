import { execFile } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import type { TargetConfig } from '../../config';
import { LifeboatError } from '../../errors';
import { cleanEnv } from '../child';
import { hookName } from '../hooks';
import type { BackupItem, MarkerCount, ProbeResult, Store, StoreContext } from '../types';
import { endpointOf, flush, info, withClient, type RedisEndpoint } from './client';
import { fileRestore, sweepTempRdbs } from './file-restore';
import { countMarkers, seedMarkers } from './markers';
import { describeRdb, parseRdb, type RdbSummary } from './rdb-parse';
import { parserTap, writeOrWait } from './rdb-tee';
import { destinations, replayRdb } from './replay';
import { syncRdb } from './replication';
import { ScratchServers } from './scratch';
import { parseRedisSettings, type RedisSettings } from './settings';

export const RDB_FORMAT = 'redis-rdb';
/** The one item of a redis target: the whole data set, and the name a restore into the server itself uses. */
export const DATASET = 'dataset';

/**
 * A Redis server (docs/redis.md). A backup is one consistent RDB snapshot of
 * every database, taken over the replication protocol (no file access to the
 * server) and checked as it streams (parse, CRC-64). A restore into the
 * target's own name loads it into the configured server — `replay` through
 * RESTORE, or `file` on the Redis host — and a restore under any other name
 * starts a scratch server on the worker host.
 */
export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly target: string;
  private readonly s: RedisSettings;
  private readonly scratch: ScratchServers;

  constructor(configFile: string, t: TargetConfig) {
    this.target = t.name;
    this.s = parseRedisSettings(configFile, t);
    this.scratch = new ScratchServers(this.s.scratchDir, this.target, this.s.redisServer);
  }

  private endpoint(): Promise<RedisEndpoint> {
    return endpointOf(this.s, this.target);
  }

  async probe(ctx: StoreContext): Promise<ProbeResult> {
    const ep = await this.endpoint();
    const facts = await withClient(ep, 'reading INFO', async (c) => ({ ...(await info(c, 'server')), ...(await info(c, 'replication')), ...(await info(c, 'persistence')) }));
    const version = facts.redis_version ?? '0.0.0';
    // Asking for rdb-only on a throwaway connection proves both that the server knows it and that the user may REPLCONF.
    const rdbOnly = await withClient(ep, 'REPLCONF rdb-only 1', (c) => c.call('REPLCONF', 'rdb-only', '1')).then(
      () => true,
      (err: LifeboatError) => {
        if (err.permanent && err.type !== 'RedisError') throw err;
        return false;
      },
    );
    const tools: Record<string, string> = {};
    const scratchTool = await redisServerVersion(this.s.redisServer, ctx.signal);
    if (scratchTool) tools['redis-server'] = scratchTool;
    else ctx.log.warn(`${this.s.redisServer} was not found on this worker: scratch drills and restores under another name of target ${this.target} need it (Debian: redis-server)`);
    const capabilities = [
      'rdb-sync',
      ...(rdbOnly ? ['rdb-only'] : []),
      `role:${facts.role ?? 'unknown'}`,
      `aof:${facts.aof_enabled === '1' ? 'on' : 'off'}`,
      `restore:${this.s.restore.mode}`,
    ];
    return { serverVersion: version, tools, capabilities };
  }

  async items(): Promise<BackupItem[]> {
    return [{ item: 'rdb', name: DATASET, file: 'dump.rdb', format: RDB_FORMAT }];
  }

  /** One SYNC; the RDB goes to `sink` and, beside it, through the parser. The sink's stream ends only if the RDB parsed and its CRC matched. */
  async backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    const ep = await this.endpoint();
    ctx.progress({ stage: 'dump', item: item.item });
    const rdb = await syncRdb(ep, {
      signal: ctx.signal,
      idleSeconds: this.s.syncTimeoutSeconds,
      warn: (m) => ctx.log.warn(m, { target: this.target }),
      onFraming: (f) => ctx.log.info('SYNC started', { target: this.target, diskless: f.diskless, bytes: f.bytes, rdbOnly: f.rdbOnly }),
    });
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    const tap = parserTap();
    const pump = (async (): Promise<RdbSummary> => {
      for await (const chunk of rdb) {
        const a = writeOrWait(out, chunk as Buffer);
        const b = tap.feed(chunk as Buffer);
        if (a || b) await Promise.all([a, b]);
      }
      const summary = await tap.finish();
      out.end();
      return summary;
    })();
    pump.catch((err: Error) => {
      tap.abort(err);
      rdb.destroy();
      out.destroy(err);
    });
    try {
      const [summary] = await Promise.all([
        pump,
        sink(out).catch((err: unknown) => {
          rdb.destroy();
          throw err;
        }),
      ]);
      item.meta = { ...item.meta, ...rdbFacts(summary) };
      ctx.log.info(describeRdb(summary), { target: this.target });
    } finally {
      rdb.destroy();
    }
  }

  async restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable): Promise<void> {
    try {
      if (item.format !== RDB_FORMAT) throw new LifeboatError('ManifestInvalid', `item ${item.item} has format ${item.format}, which the redis kind of this lifeboat does not know; upgrade lifeboat`);
      if (into !== DATASET) {
        await this.scratch.restore(ctx, into, source);
        return;
      }
      const ep = await this.endpoint();
      if (this.s.restore.mode === 'file') {
        await fileRestore(ctx, ep, this.s.restore, this.target, source);
        return;
      }
      const r = await replayRdb(ctx, ep, this.s, this.target, source);
      ctx.log.info('replay restore done', { target: this.target, loaded: r.loaded, expiredSkipped: r.expired });
    } catch (err) {
      source.destroy();
      throw err;
    }
  }

  /** What a restore into the server itself does, for the plan (no extra approval: lifeboat refuses to overwrite keys unless told). */
  restoreNotice(into: string): { text: string; approvalRequired: boolean } | undefined {
    if (into !== DATASET) return undefined;
    const at = `${this.s.host}:${this.s.port}`;
    const r = this.s.restore;
    if (r.mode === 'file') {
      return { text: `restoring target ${this.target} stops the Redis server at ${at} (${hookName(r.stop)}), replaces its whole data set in ${r.dir} (every database, and its AOF) with the backup's RDB, and starts it again (${hookName(r.start)})`, approvalRequired: false };
    }
    const dbs = destinations(this.s).dbs;
    const where = dbs ? `database${dbs.length > 1 ? 's' : ''} ${dbs.join(', ')}` : 'every database';
    return {
      text: r.flush
        ? `restoring target ${this.target} empties ${where} of the Redis server at ${at} (FLUSHDB) and loads the backup's keys with RESTORE`
        : `restoring target ${this.target} loads the backup's keys into ${where} of the Redis server at ${at} with RESTORE; it refuses if any of them holds keys`,
      approvalRequired: false,
    };
  }

  drillName(): string {
    return DATASET;
  }

  scratchName(token: string): string {
    return `lifeboat_drill_${token}`;
  }

  /**
   * `dataset`: empties the server's data — the configured databases, or the
   * replay destination db, or (none configured) every database: the in-place
   * drill's drop. Any other name: stops that scratch server and deletes its
   * folder. Idempotent.
   */
  async drop(ctx: StoreContext, name: string): Promise<void> {
    ctx.progress({ stage: 'drop', item: name });
    if (name !== DATASET) return this.scratch.drop(name);
    const ep = await this.endpoint();
    const dbs = this.s.restore.mode === 'replay' ? destinations(this.s).dbs : undefined;
    await withClient(ep, `flushing ${dbs ? `databases ${dbs.join(', ')}` : 'every database'}`, (c) => flush(c, dbs));
  }

  /** Where markers are read: the server itself (the drill db, or the replay's destination db), or a scratch server. */
  private async markerPlace(name: string): Promise<{ ep: RedisEndpoint; db: number } | undefined> {
    if (name === DATASET) {
      const r = this.s.restore;
      return { ep: await this.endpoint(), db: r.mode === 'replay' && r.db !== undefined ? r.db : this.s.drillDb };
    }
    const ep = await this.scratch.endpoint(name);
    return ep && { ep, db: this.s.drillDb };
  }

  async seedMarkers(_ctx: StoreContext, name: string, count: number, nonce: string): Promise<void> {
    const place = await this.markerPlace(name);
    if (!place) throw new LifeboatError('InvalidName', `target ${this.target} has no scratch server '${name}' to seed markers in`, true);
    const db = this.s.drillDb;
    await withClient(place.ep, `seeding drill markers in db ${db}`, (c) => seedMarkers(c, db, count, nonce));
  }

  async countMarkers(_ctx: StoreContext, name: string, nonce: string): Promise<MarkerCount> {
    const place = await this.markerPlace(name);
    if (!place) return { found: [] };
    return { found: await withClient(place.ep, `counting drill markers in db ${place.db}`, (c) => countMarkers(c, place.db, nonce)) };
  }

  /** Parses the whole RDB and checks its CRC-64; one line: version, keys per database, checksum. */
  async inspect(_ctx: StoreContext, item: BackupItem, plaintext: Readable): Promise<string> {
    if (item.format !== RDB_FORMAT) return 'no inspection for this format';
    return describeRdb(await parseRdb(plaintext));
  }

  /** Leftovers of attempts whose worker died on this host: half-made scratch folders, temporary RDBs beside the server's. */
  async sweep(): Promise<string[]> {
    const out = await this.scratch.sweep();
    if (this.s.restore.mode === 'file') out.push(...(await sweepTempRdbs(this.s.restore.dir)));
    return out;
  }

  isPermanent(err: unknown): boolean {
    if (err instanceof LifeboatError) return err.permanent;
    const msg = (err as Error)?.message ?? '';
    return /^(WRONGPASS|NOAUTH|NOPERM)/.test(msg);
  }
}

/** What the manifest keeps of a backup's RDB. */
function rdbFacts(s: RdbSummary): Record<string, unknown> {
  return {
    rdbVersion: s.version,
    redisVersion: s.aux['redis-ver'],
    keys: Object.fromEntries([...s.dbs].sort((a, b) => a[0] - b[0]).map(([db, c]) => [`db${db}`, c])),
    types: s.types,
    functions: s.functions,
    checksum: s.checksum === 'ok' ? s.crc : 'none',
    bytes: s.bytes,
  };
}

function redisServerVersion(bin: string, signal: AbortSignal): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(bin, ['--version'], { env: cleanEnv(), signal, timeout: 10_000 }, (err, stdout) => resolve(err ? undefined : (/v=(\S+)/.exec(stdout)?.[1] ?? stdout.trim())));
  });
}
