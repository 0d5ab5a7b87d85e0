import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import type { TargetConfig } from '../../src/config';
import { parseConfig } from '../../src/config/load';
import { freePort } from '../../src/stores/child';
import { RedisStore } from '../../src/stores/redis';
import { stackConfig } from '../helpers/env';
import type { ContractKind } from './kinds';

/**
 * Helpers for the redis kind's tests: the stack's Redis (7.0 on
 * 127.0.0.1:16379, requirepass in the stack's secrets folder), each test file
 * on databases of its own, and private redis-servers a test starts itself on
 * a free loopback port (for file restores, which stop and start the server).
 */
export const STACK_PORT = 16379;

export function stackPasswordFile(): string {
  return join(process.env.LIFEBOAT_STATE_DIR ?? dirname(stackConfig().file), 'secrets', 'redis-password');
}

/** A redis target as lifeboat.yaml would give it, parsed by the real config code. */
export function redisTarget(name: string, settings: Record<string, unknown>): TargetConfig {
  const text = stringify({
    repository: { kind: 'local', path: '/nonexistent' },
    encryption: 'none',
    targets: { [name]: { kind: 'redis', host: '127.0.0.1', port: STACK_PORT, password: { file: stackPasswordFile() }, ...settings } },
  });
  return parseConfig(text, stackConfig().file).targets.get(name)!;
}

export function redisStore(settings: Record<string, unknown>, name = 'cache-redis'): RedisStore {
  return new RedisStore(stackConfig().file, redisTarget(name, settings));
}

export function client(port = STACK_PORT, password = readFileSync(stackPasswordFile(), 'utf8').trim(), db = 0): Redis {
  const c = new Redis({ host: '127.0.0.1', port, password, db, protocol: 2, maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  return c;
}


const run = (cmd: string, args: string[]) =>
  new Promise<string>((resolve, reject) => execFile(cmd, args, (err, out, errOut) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${errOut || err.message}`)) : resolve(out))));

/** A redis-server of the test's own, daemonized with a pidfile, in a temp folder. */
export interface TestRedis {
  dir: string;
  data: string;
  port: number;
  password: string;
  passwordFile: string;
  conf: string;
  pidfile: string;
  client(db?: number): Redis;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops it and deletes its folder. */
  remove(): Promise<void>;
  /** The hooks a file restore uses to stop and start it. */
  hooks: { stop: Record<string, unknown>; start: Record<string, unknown> };
}

export async function startTestRedis(o: { appendonly?: boolean; diskless?: boolean } = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-redis-test-'));
  const data = join(dir, 'data');
  await mkdir(data);
  const port = await freePort();
  const password = randomBytes(16).toString('hex');
  const passwordFile = join(dir, 'password');
  await writeFile(passwordFile, password, { mode: 0o600 });
  const conf = join(dir, 'redis.conf');
  const pidfile = join(dir, 'redis.pid');
  // `save` points on purpose: a server stopped after the RDB was put in place would write its own over it.
  await writeFile(
    conf,
    [
      'bind 127.0.0.1',
      `port ${port}`,
      'daemonize yes',
      `pidfile ${pidfile}`,
      `logfile ${join(dir, 'redis.log')}`,
      `dir ${data}`,
      'dbfilename dump.rdb',
      `appendonly ${o.appendonly ? 'yes' : 'no'}`,
      'appenddirname appendonlydir',
      'save 3600 1',
      `repl-diskless-sync ${o.diskless === false ? 'no' : 'yes'}`,
      'repl-diskless-sync-delay 0',
      `requirepass ${password}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const alive = async () => {
    const pid = Number((await readFile(pidfile, 'utf8').catch(() => '')).trim());
    if (!pid) return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  };
  const t: TestRedis = {
    dir,
    data,
    port,
    password,
    passwordFile,
    conf,
    pidfile,
    client: (db = 0) => client(port, password, db),
    async start() {
      await run('redis-server', [conf]);
      for (let i = 0; i < 100; i++) {
        const c = t.client();
        const ok = await c.ping().then(() => true, () => false);
        c.disconnect();
        if (ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`test redis-server on ${port} did not start: ${await readFile(join(dir, 'redis.log'), 'utf8').catch(() => '')}`);
    },
    async stop() {
      const pid = await alive();
      if (!pid) return;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 200 && (await alive()); i++) await new Promise((r) => setTimeout(r, 50));
      // A server whose shutdown save is slow (or fails) is still there: it must not outlive the test.
      if (await alive()) process.kill(pid, 'SIGKILL');
    },
    async remove() {
      // No final save: its folder is about to go (a save into a missing folder would keep it running).
      const c = t.client();
      await c.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
      c.disconnect();
      await t.stop();
      await rm(dir, { recursive: true, force: true });
    },
    hooks: {
      // The stop hook only signals; the restore itself waits until the port is closed.
      stop: { command: ['sh', '-c', `kill "$(cat '${pidfile}')"`], timeoutSeconds: 30 },
      start: { command: ['redis-server', conf], timeoutSeconds: 30 },
    },
  };
  await t.start();
  return t;
}

/** Keys of every common type, some with a TTL, some large enough to be LZF-compressed or stored as quicklists. */
export async function seedTypes(c: Redis, db: number, prefix: string): Promise<void> {
  await c.select(db);
  const long = `${prefix}-${'abcdefgh'.repeat(40)}`;
  await c.set(`${prefix}:str`, 'hello');
  await c.set(`${prefix}:int`, '12345');
  await c.set(`${prefix}:long`, long);
  await c.set(`${prefix}:ttl`, 'soon', 'EX', 7200);
  await c.set(`${prefix}:${'k'.repeat(60)}:long-key-compressed`, 'v');
  await c.rpush(`${prefix}:list`, 'a', 'b', 'c', '1', '2');
  await c.rpush(`${prefix}:biglist`, ...Array.from({ length: 2000 }, (_, i) => `item-${i}-${'x'.repeat(i % 50)}`));
  await c.hset(`${prefix}:hash`, { f1: 'v1', f2: 'v2', n: '3' });
  await c.hset(`${prefix}:bighash`, Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`field${i}`, `value-${i}-${'y'.repeat(70)}`])));
  await c.pexpire(`${prefix}:bighash`, 3_600_000);
  await c.sadd(`${prefix}:intset`, 1, 2, 3, 42);
  await c.sadd(`${prefix}:set`, 'x', 'y', 'z');
  await c.sadd(`${prefix}:bigset`, ...Array.from({ length: 700 }, (_, i) => `member-${i}`));
  await c.zadd(`${prefix}:zset`, 1, 'one', 2.5, 'two-and-a-half', -3, 'minus-three');
  await c.zadd(`${prefix}:bigzset`, ...Array.from({ length: 300 }, (_, i) => [i / 7, `m${i}-${'z'.repeat(70)}`]).flat());
  await c.expire(`${prefix}:zset`, 9000);
  for (let i = 0; i < 20; i++) await c.xadd(`${prefix}:stream`, '*', 'n', String(i), 'who', `w${i % 3}`);
  await c.xgroup('CREATE', `${prefix}:stream`, 'workers', '0');
  await c.xreadgroup('GROUP', 'workers', 'alice', 'COUNT', 5, 'STREAMS', `${prefix}:stream`, '>');
}

/** A key's value in a canonical form (sets and hashes sorted: their encoding's order is not stable across reloads). */
async function canonical(c: Redis, k: string): Promise<unknown> {
  const type = await c.type(k);
  switch (type) {
    case 'string':
      return [type, await c.get(k)];
    case 'list':
      return [type, await c.lrange(k, 0, -1)];
    case 'set':
      return [type, (await c.smembers(k)).sort()];
    case 'hash':
      return [type, Object.entries(await c.hgetall(k)).sort()];
    case 'zset':
      return [type, await c.zrange(k, '0', '-1', 'WITHSCORES')];
    case 'stream':
      return [type, await c.xrange(k, '-', '+'), await c.call('XINFO', 'GROUPS', k), await c.call('XPENDING', k, 'workers').catch(() => null)];
    default:
      return [type, ((await c.callBuffer('DUMP', k)) as Buffer).toString('base64')];
  }
}

/** Every key of `db` with a digest of its value and its absolute expiry: equal snapshots mean equal data. */
export async function snapshotDb(c: Redis, db: number): Promise<Map<string, { value: string; expireAt: number }>> {
  await c.select(db);
  const out = new Map<string, { value: string; expireAt: number }>();
  const keys = (await c.keys('*')).sort();
  for (const k of keys) {
    const value = createHash('sha256').update(JSON.stringify(await canonical(c, k))).digest('hex').slice(0, 16);
    const expireAt = Number(await c.call('PEXPIRETIME', k));
    out.set(k, { value, expireAt });
  }
  return out;
}

// ---------------------------------------------------------------- the contract entry

/** The contract runs on its own database of the stack's Redis. */
const CONTRACT_DB = 7;
let scratchDir = '';

export const redisKind: ContractKind = {
  kind: 'redis',
  async setup() {
    scratchDir = await mkdtemp(join(tmpdir(), 'lifeboat-redis-contract-'));
    const c = client();
    await c.select(CONTRACT_DB);
    await c.flushdb();
    await seedTypes(c, CONTRACT_DB, 'contract');
    c.disconnect();
    return redisStore({ databases: [CONTRACT_DB], scratchDir: join(scratchDir, 'scratch') });
  },
  async badCredentials() {
    process.env.LIFEBOAT_CONTRACT_BAD_REDIS_PW = 'wrong-password';
    return redisStore({ databases: [CONTRACT_DB], password: { env: 'LIFEBOAT_CONTRACT_BAD_REDIS_PW' } });
  },
  async teardown() {
    const c = client();
    await c.select(CONTRACT_DB);
    await c.flushdb();
    c.disconnect();
    if (scratchDir && existsSync(scratchDir)) {
      await redisStore({ databases: [CONTRACT_DB], scratchDir: join(scratchDir, 'scratch') }).drop({ signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: () => undefined } }, 'lifeboat_drill_c0ffee01');
      await rm(scratchDir, { recursive: true, force: true });
    }
  },
};
