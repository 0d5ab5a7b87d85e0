import { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import type { BackupItem, StoreContext } from '../../src/stores';
import { RedisStore } from '../../src/stores/redis';
import { IN_PROGRESS_KEY } from '../../src/stores/redis/replay';
import type { S3RepositoryConfig } from '../../src/config';
import { adminClient, backupThroughPipeline, quietCtx, removePrefix, restoreThroughPipeline, scopeFor } from '../contract/bucket-kind';
import { redisTarget, seedTypes, snapshotDb, startTestRedis, type TestRedis } from '../contract/redis-kind';
import { stackConfig, testEnv } from '../helpers/env';

/**
 * Backup of a real redis-server (one the test starts) through the artifact
 * pipeline (age, SHA-256, the stack's MinIO), then `replay` restores into
 * another one through RESTORE: every type, several databases, TTLs to the
 * millisecond, expired keys skipped, functions, the non-empty refusal.
 */
jest.setTimeout(180_000);

const env = testEnv('redisreplay');
let source: TestRedis;
let dest: TestRedis;
const ctx: StoreContext = quietCtx();

function storeFor(t: TestRedis, settings: Record<string, unknown> = {}): RedisStore {
  return new RedisStore(stackConfig().file, redisTarget('cache-redis', { port: t.port, password: { file: t.passwordFile }, ...settings }));
}

async function collect(t: TestRedis, dbs: number[]): Promise<Record<number, Awaited<ReturnType<typeof snapshotDb>>>> {
  const c = t.client();
  const out: Record<number, Awaited<ReturnType<typeof snapshotDb>>> = {};
  for (const db of dbs) out[db] = await snapshotDb(c, db);
  c.disconnect();
  return out;
}

async function withClient<T>(t: TestRedis, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = t.client();
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

let backup: Awaited<ReturnType<typeof backupThroughPipeline>>;

beforeAll(async () => {
  source = await startTestRedis();
  dest = await startTestRedis();
  await withClient(source, async (c) => {
    await seedTypes(c, 0, 'zero');
    await seedTypes(c, 3, 'three');
    await c.select(12);
    await c.set('twelve', 'only in db 12');
    await c.set('gone-soon', 'x', 'PX', 1500);
    await c.call('FUNCTION', 'LOAD', "#!lua name=lifeboattest\nredis.register_function('lbhello', function() return 'hi' end)");
  });
  backup = await backupThroughPipeline(storeFor(source), await scopeFor(env.config, 'cache-redis'));
  // Expired by the time it is restored.
  await new Promise((r) => setTimeout(r, 1600));
});

afterAll(async () => {
  await source?.remove();
  await dest?.remove();
  const repo = env.config.repository as S3RepositoryConfig;
  await removePrefix(await adminClient(repo), repo.bucket, `${repo.prefix}/`);
});

beforeEach(async () => {
  await withClient(dest, async (c) => {
    await c.flushall();
    await c.call('FUNCTION', 'FLUSH');
  });
});

test('the backup records the RDB facts: per-database counts, types, checksum', () => {
  const meta = backup.item.meta as { rdbVersion: number; keys: Record<string, { keys: number; expires: number }>; types: Record<string, number>; functions: number; checksum: string };
  expect(meta.rdbVersion).toBe(10);
  expect(meta.keys.db0!.keys).toBe(15);
  expect(meta.keys.db3!.keys).toBe(15);
  expect(meta.keys.db12).toEqual({ keys: 2, expires: 1 });
  expect(meta.keys.db0!.expires).toBe(3);
  expect(Object.keys(meta.types).sort()).toEqual(['hash', 'list', 'set', 'stream', 'string', 'zset']);
  expect(meta.functions).toBe(1);
  expect(meta.checksum).toMatch(/^[0-9a-f]{16}$/);
});

test('replay restores every key of every database with its exact TTL, skips expired keys, and loads functions', async () => {
  const scope = await scopeFor(env.config, 'cache-redis');
  await restoreThroughPipeline(storeFor(dest), scope, backup, 'dataset');
  const want = await collect(source, [0, 3, 12]);
  const got = await collect(dest, [0, 3, 12]);
  expect(got[0]).toEqual(want[0]);
  expect(got[3]).toEqual(want[3]);
  expect([...got[12]!.keys()]).toEqual(['twelve']);
  const ttl = got[0]!.get('zero:ttl')!.expireAt;
  expect(ttl).toBeGreaterThan(Date.now());
  expect(ttl).toBe(want[0]!.get('zero:ttl')!.expireAt);
  await withClient(dest, async (c) => {
    expect(await c.exists(IN_PROGRESS_KEY)).toBe(0);
    expect(await c.call('FCALL', 'lbhello', 0)).toBe('hi');
    await c.select(3);
    expect(await c.xpending('three:stream', 'workers')).toEqual([5, expect.any(String), expect.any(String), [['alice', '5']]]);
  });
});

test('refuses a non-empty destination and names the database and its keys; flush: true empties it first', async () => {
  await withClient(dest, async (c) => {
    await c.select(3);
    await c.set('precious', 'keep me');
  });
  const scope = await scopeFor(env.config, 'cache-redis');
  const err = (await restoreThroughPipeline(storeFor(dest), scope, backup, 'dataset').catch((e: unknown) => e)) as Error & { type: string };
  expect(err.type).toBe('RestoreTargetNotEmpty');
  expect(err.message).toMatch(/db 3 holds 1 key;.*targets\.cache-redis\.restore\.flush: true.*Nothing was changed/);
  expect(storeFor(dest).isPermanent(err)).toBe(true);
  await withClient(dest, async (c) => {
    expect(await c.dbsize()).toBe(0);
    await c.select(3);
    expect(await c.keys('*')).toEqual(['precious']);
  });
  await restoreThroughPipeline(storeFor(dest, { restore: { mode: 'replay', flush: true } }), scope, backup, 'dataset');
  expect((await collect(dest, [3]))[3]).toEqual((await collect(source, [3]))[3]);
});

test('a retry after a crash recognises its own half-loaded data and starts over', async () => {
  await withClient(dest, async (c) => {
    await c.set(IN_PROGRESS_KEY, '{"target":"cache-redis"}');
    await c.set('zero:str', 'half-written');
    await c.select(5);
    await c.set('left-over', '1');
  });
  await restoreThroughPipeline(storeFor(dest), await scopeFor(env.config, 'cache-redis'), backup, 'dataset');
  expect((await collect(dest, [0]))[0]).toEqual((await collect(source, [0]))[0]);
  await withClient(dest, async (c) => {
    await c.select(5);
    expect(await c.dbsize()).toBe(0);
  });
});

test('restore.db loads one database of the backup into another, and touches no other', async () => {
  await withClient(dest, async (c) => {
    await c.select(9);
    await c.set('neighbour', 'stays');
  });
  const store = storeFor(dest, { restore: { mode: 'replay', db: 5, fromDb: 3 } });
  await restoreThroughPipeline(store, await scopeFor(env.config, 'cache-redis'), backup, 'dataset');
  const got = await collect(dest, [0, 3, 5, 9]);
  expect(got[0]!.size).toBe(0);
  expect(got[3]!.size).toBe(0);
  expect(got[5]).toEqual((await collect(source, [3]))[3]);
  expect([...got[9]!.keys()]).toEqual(['neighbour']);
  // The drill reads its markers where the restore put them; drop empties only that database.
  await store.drop(ctx, 'dataset');
  const after = await collect(dest, [5, 9]);
  expect(after[5]!.size).toBe(0);
  expect(after[9]!.size).toBe(1);
});

test('databases limits what a replay loads', async () => {
  await restoreThroughPipeline(storeFor(dest, { databases: [3] }), await scopeFor(env.config, 'cache-redis'), backup, 'dataset');
  const got = await collect(dest, [0, 3, 12]);
  expect(got[0]!.size).toBe(0);
  expect(got[12]!.size).toBe(0);
  expect(got[3]!.size).toBe(15);
});

test('a stream that is not an RDB fails the replay as corrupt before any key is written', async () => {
  const item: BackupItem = { ...backup.item };
  const err = (await storeFor(dest)
    .restore(ctx, item, 'dataset', Readable.from([Buffer.from('REDIS0010'), Buffer.from([0x42, 0x00])]))
    .catch((e: unknown) => e)) as Error & { type: string };
  expect(err.type).toBe('RdbCorrupt');
  expect(err.message).toMatch(/unknown record type 66 at byte 9/);
  await withClient(dest, async (c) => expect(await c.dbsize()).toBe(1)); // only the in-progress key
});

test('an ACL user with the documented commands can back up, replay and count markers', async () => {
  const acl = '+auth +ping +info +replconf +sync +psync +select +exists +scan +get +set +del +pttl +restore +function|load +flushdb +flushall +config|get';
  for (const t of [source, dest]) await withClient(t, async (c) => void (await c.call('ACL', 'SETUSER', 'lbuser', 'on', '>lb-secret-pw', '~*', '&*', '-@all', ...acl.split(' '))));
  process.env.LIFEBOAT_TEST_REDIS_ACL_PW = 'lb-secret-pw';
  const as = (t: TestRedis, extra: Record<string, unknown> = {}) => storeFor(t, { user: 'lbuser', password: { env: 'LIFEBOAT_TEST_REDIS_ACL_PW' }, ...extra });
  await as(source).probe(ctx);
  await as(source).seedMarkers(ctx, 'dataset', 97, 'acl-nonce');
  const b = await backupThroughPipeline(as(source), await scopeFor(env.config, 'cache-redis'));
  await restoreThroughPipeline(as(dest), await scopeFor(env.config, 'cache-redis'), b, 'dataset');
  expect((await as(dest).countMarkers(ctx, 'dataset', 'acl-nonce')).found).toHaveLength(97);
  await as(dest).drop(ctx, 'dataset');
  // Without RESTORE the replay is refused, permanently, naming the fix.
  await withClient(dest, async (c) => void (await c.call('ACL', 'SETUSER', 'lbuser', '-restore')));
  const err = (await restoreThroughPipeline(as(dest), await scopeFor(env.config, 'cache-redis'), b, 'dataset').catch((e: unknown) => e)) as Error & { type: string };
  expect(err.type).toBe('PermissionDenied');
  expect(err.message).toMatch(/NOPERM.*grant the ACL user the commands listed in docs\/redis\.md/);
  expect(as(dest).isPermanent(err)).toBe(true);
});
