import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseTargetSettings, type SecretRef, type TargetConfig } from '../../config';
import { bool, path, port, secretRef, strict, text, wholeNumber, type SchemaContext } from '../../config/fields';
import { hookSchema, type Hook } from '../../config/hooks';
import { LifeboatError } from '../../errors';

/** Redis numbers its databases from 0; 16 is the default `databases`, servers may have more. */
const dbNumber = () => wholeNumber(0, 65535);

const replayRestore = () =>
  strict({
    mode: z.literal('replay'),
    db: dbNumber().optional().meta({ description: 'load the keys of one database of the backup (fromDb) into this database instead of their own' }),
    fromDb: dbNumber().optional().meta({ description: 'with db: the database of the backup to load (default: drillDb)' }),
    flush: bool().default(false).meta({ description: 'empty the destination databases first when they hold keys (default: refuse)' }),
    inFlight: wholeNumber(1, 10000).default(256).meta({ description: 'RESTORE commands sent ahead of their replies' }),
  });

const fileRestore = (c: SchemaContext) =>
  strict({
    mode: z.literal('file'),
    dir: path(c).meta({ description: "the server's data folder (its `dir`); the worker runs on the Redis host" }),
    dbfilename: text().regex(/^[^/]+$/, 'must be a file name, not a path').default('dump.rdb'),
    appendonly: z.union([z.literal('auto'), bool()]).default('auto').meta({ description: 'whether the server runs with AOF: auto asks it (CONFIG GET), else looks for the AOF folder' }),
    appenddirname: text().regex(/^[^/]+$/, 'must be a folder name, not a path').default('appendonlydir'),
    appendfilename: text().regex(/^[^/]+$/, 'must be a file name, not a path').default('appendonly.aof'),
    stop: hookSchema(c).meta({ description: 'stops the Redis server (argv or HTTP), e.g. { command: [systemctl, stop, redis-server] }' }),
    start: hookSchema(c).meta({ description: 'starts it again' }),
    loadTimeoutSeconds: wholeNumber(1, 7 * 24 * 3600).default(600).meta({ description: 'how long the server may take to load the RDB after start' }),
  });

/** A redis target's settings (docs/redis.md). */
export const redisSettings = (c: SchemaContext) => ({
  host: text().default('127.0.0.1'),
  port: port().default(6379),
  user: text().optional().meta({ description: 'ACL user (default: the default user, i.e. requirepass)' }),
  password: secretRef(c).optional(),
  databases: z.array(dbNumber()).min(1, 'must list at least one database').optional().meta({ description: 'databases a replay restore loads and a drop empties (default: all); a backup always holds all' }),
  drillDb: dbNumber().optional().meta({ description: 'database the drill seeds its markers in (default: the first of databases, else 0)' }),
  syncTimeoutSeconds: wholeNumber(5, 24 * 3600).default(120).meta({ description: 'the replication stream fails after this long without a byte' }),
  restore: z
    .discriminatedUnion('mode', [replayRestore(), fileRestore(c)], { error: (iss) => (iss.code === 'invalid_union' ? "mode must be 'replay' or 'file'" : undefined) })
    .default({ mode: 'replay', flush: false, inFlight: 256 })
    .meta({ description: "how a restore into the server loads the RDB: { mode: replay } (through the protocol) or { mode: file, dir, stop, start } (on the Redis host)" }),
  redisServer: text().default('redis-server').meta({ description: 'redis-server binary for scratch copies (drills, restores under another name)' }),
  scratchDir: path(c).optional().meta({ description: 'private folder of the scratch servers (default: <tmp>/lifeboat-redis-<uid>)' }),
});

export interface ReplaySettings {
  mode: 'replay';
  db?: number;
  fromDb?: number;
  flush: boolean;
  inFlight: number;
}

export interface FileSettings {
  mode: 'file';
  dir: string;
  dbfilename: string;
  appendonly: 'auto' | boolean;
  appenddirname: string;
  appendfilename: string;
  stop: Hook;
  start: Hook;
  loadTimeoutSeconds: number;
}

export interface RedisSettings {
  host: string;
  port: number;
  user?: string;
  password?: SecretRef;
  /** undefined: every database. */
  databases?: number[];
  drillDb: number;
  syncTimeoutSeconds: number;
  restore: ReplaySettings | FileSettings;
  redisServer: string;
  scratchDir: string;
}

export function parseRedisSettings(file: string, t: Pick<TargetConfig, 'name' | 'settings'>): RedisSettings {
  const s = parseTargetSettings(file, t, redisSettings);
  const at = (f: string) => `config ${file}: 'targets.${t.name}.${f}'`;
  const databases = s.databases ? [...new Set(s.databases)].sort((a, b) => a - b) : undefined;
  const drillDb = s.drillDb ?? databases?.[0] ?? 0;
  if (databases && !databases.includes(drillDb)) {
    throw new LifeboatError('ConfigError', `${at('drillDb')} is ${drillDb}, which is not among databases (${databases.join(', ')}); add it there or choose one of them`);
  }
  const r = s.restore as ReplaySettings | FileSettings;
  if (r.mode === 'file' && databases) {
    throw new LifeboatError('ConfigError', `${at('databases')} limits the databases, but restore mode 'file' replaces the whole data set of the server; remove databases, or use restore mode 'replay'`);
  }
  if (r.mode === 'replay' && r.fromDb !== undefined && r.db === undefined) {
    throw new LifeboatError('ConfigError', `${at('restore.fromDb')} needs restore.db: the database the keys of db ${r.fromDb} are loaded into`);
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    password: s.password,
    databases,
    drillDb,
    syncTimeoutSeconds: s.syncTimeoutSeconds,
    restore: r.mode === 'replay' ? { ...r, fromDb: r.db === undefined ? undefined : (r.fromDb ?? drillDb) } : r,
    redisServer: s.redisServer,
    scratchDir: s.scratchDir ?? join(tmpdir(), `lifeboat-redis-${uid}`),
  };
}
