import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { S3RepositoryConfig } from '../../src/config';
import { RedisStore } from '../../src/stores/redis';
import { adminClient, backupThroughPipeline, quietCtx, removePrefix, restoreThroughPipeline, scopeFor } from '../contract/bucket-kind';
import { redisTarget, seedTypes, snapshotDb, startTestRedis, type TestRedis } from '../contract/redis-kind';
import { stackConfig, testEnv } from '../helpers/env';

/**
 * `file` restores into redis-servers the test starts itself (never the
 * stack's): stop by hook, RDB renamed into place, AOF switched over when the
 * server runs with it, start, wait for the load. The servers have `save`
 * points, so one stopped after the file was put in place would overwrite it.
 */
jest.setTimeout(180_000);

const env = testEnv('redisfile');
let source: TestRedis;
const servers: TestRedis[] = [];
let backup: Awaited<ReturnType<typeof backupThroughPipeline>>;

function fileStore(t: TestRedis, extra: Record<string, unknown> = {}): RedisStore {
  return new RedisStore(
    stackConfig().file,
    redisTarget('cache-redis', { port: t.port, password: { file: t.passwordFile }, restore: { mode: 'file', dir: t.data, stop: t.hooks.stop, start: t.hooks.start, loadTimeoutSeconds: 60, ...extra } }),
  );
}

async function snap(t: TestRedis, dbs = [0, 4]) {
  const c = t.client();
  try {
    const out: Record<number, Awaited<ReturnType<typeof snapshotDb>>> = {};
    for (const db of dbs) out[db] = await snapshotDb(c, db);
    return out;
  } finally {
    c.disconnect();
  }
}

async function target(o: { appendonly: boolean }): Promise<TestRedis> {
  const t = await startTestRedis(o);
  servers.push(t);
  const c = t.client();
  await c.set('old', 'data that the restore replaces');
  await c.select(4);
  await c.set('old4', 'x');
  c.disconnect();
  return t;
}

beforeAll(async () => {
  source = await startTestRedis({ diskless: false }); // disk-based SYNC: the `$<length>` framing
  servers.push(source);
  const c = source.client();
  await seedTypes(c, 0, 'a');
  await seedTypes(c, 4, 'b');
  c.disconnect();
  backup = await backupThroughPipeline(fileStore(source), await scopeFor(env.config, 'cache-redis'));
});

afterAll(async () => {
  for (const s of servers) await s.remove();
  const repo = env.config.repository as S3RepositoryConfig;
  await removePrefix(await adminClient(repo), repo.bucket, `${repo.prefix}/`);
});

test.each([false, true])('a file restore (appendonly %s) replaces the data, which survives a restart', async (appendonly) => {
  const t = await target({ appendonly });
  await restoreThroughPipeline(fileStore(t), await scopeFor(env.config, 'cache-redis'), backup, 'dataset');
  const want = await snap(source);
  expect(await snap(t)).toEqual(want);
  // What the server loads at its next start is the restored data, not its old RDB or AOF.
  await t.stop();
  await t.start();
  expect(await snap(t)).toEqual(want);
  const left = (await readdir(t.data)).filter((f) => f.startsWith('.lifeboat'));
  expect(left).toEqual([]);
  if (appendonly) {
    const manifest = await readFile(join(t.data, 'appendonlydir', 'appendonly.aof.manifest'), 'utf8');
    expect(manifest).toMatch(/^file appendonly\.aof\.\d+\.base\.rdb seq \d+ type b\n/);
    // The AOF goes on working: a write after the restore is there after a restart.
    const c = t.client();
    await c.set('after-restore', 'kept');
    c.disconnect();
    await t.stop();
    await t.start();
    const c2 = t.client();
    expect(await c2.get('after-restore')).toBe('kept');
    expect(await c2.get('old')).toBeNull();
    c2.disconnect();
  } else {
    expect(existsSync(join(t.data, 'appendonlydir'))).toBe(false);
  }
});

test('settings that do not describe the server are refused before anything is stopped', async () => {
  const t = await target({ appendonly: false });
  const err = (await restoreThroughPipeline(fileStore(t, { dbfilename: 'other.rdb' }), await scopeFor(env.config, 'cache-redis'), backup, 'dataset').catch((e: unknown) => e)) as Error & { type: string };
  expect(err.type).toBe('ConfigError');
  expect(err.message).toMatch(/dbfilename is other\.rdb, the server's is dump\.rdb.*nothing was stopped or replaced/);
  const c = t.client();
  expect(await c.get('old')).toBe('data that the restore replaces');
  c.disconnect();
});

test('a damaged RDB is refused while it is written, before the server is stopped', async () => {
  const t = await target({ appendonly: false });
  const c = t.client();
  const pidBefore = await c.info('server');
  c.disconnect();
  const bytes: Buffer[] = [];
  await fileStore(source).backup(quietCtx(), { ...backup.item }, async (s) => {
    for await (const b of s) bytes.push(b as Buffer);
  });
  const rdb = Buffer.concat(bytes);
  rdb[Math.floor(rdb.length / 2)]! ^= 0x01;
  const err = (await fileStore(t)
    .restore(quietCtx(), backup.item, 'dataset', Readable.from([rdb]))
    .catch((e: unknown) => e)) as Error & { type: string };
  expect(err.type).toBe('RdbCorrupt');
  const c2 = t.client();
  expect(await c2.get('old')).toBe('data that the restore replaces');
  expect(/process_id:(\d+)/.exec(await c2.info('server'))![1]).toBe(/process_id:(\d+)/.exec(pidBefore)![1]);
  c2.disconnect();
  expect((await readdir(t.data)).filter((f) => f.startsWith('.lifeboat'))).toEqual([]);
});
