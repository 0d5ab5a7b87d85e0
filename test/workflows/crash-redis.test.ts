import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { S3RepositoryConfig } from '../../src/config';
import type { DrillResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { s3Client } from '../../src/repo/s3';
import { IN_PROGRESS_KEY } from '../../src/stores/redis/replay';
import { adminClient, removePrefix } from '../contract/bucket-kind';
import { startTestRedis, type TestRedis } from '../contract/redis-kind';
import { CRASH_HEARTBEAT_TIMEOUT, CrashWorker } from '../helpers/crash';
import { testEnv } from '../helpers/env';

/**
 * Kill -9 a real worker while it streams a Redis backup to the repository
 * and while it replays it into the server, start a new one, and show the
 * drill completes with every marker (TTLs included) and every key, with
 * nothing half-written in the repository; then the same in a scratch drill,
 * and that no scratch server or folder is left behind.
 */
jest.setTimeout(600_000);

const env = testEnv('crashredis');
const KEYS = 150_000; // 1 KiB of random bytes each: ~150 MB of RDB
let dir: string;
let scratchDir: string;
let configFile: string;
let redis: TestRedis;
const workers = new CrashWorker(() => configFile);

async function drill(mode: 'in-place' | 'scratch') {
  const id = `drill/${env.taskQueue}/${randomBytes(3).toString('hex')}`;
  return { id, handle: await workers.client.workflow.start('drillWorkflow', { taskQueue: env.taskQueue, workflowId: id, args: [{ mode }] }) };
}

async function expectCleanRepository(backupId: string): Promise<void> {
  const repo = await openRepository(env.config);
  const files = (await repo.list(`cache-redis/${backupId}`)).map((e) => e.name).sort();
  const signed = env.config.signing?.keyFile ? ['manifest.json.sig'] : [];
  expect(files).toEqual(['dump.rdb.zst.age', 'dump.rdb.zst.age.blocks', 'dump.rdb.zst.age.sha256', 'manifest.json', ...signed]);
  const cfg = env.config.repository as S3RepositoryConfig;
  const open = await (await s3Client(cfg)).send(new ListMultipartUploadsCommand({ Bucket: cfg.bucket, Prefix: `${cfg.prefix}/` }));
  expect(open.Uploads ?? []).toEqual([]);
}

/** Processes that are scratch servers under `root` (by their folder, their environment mark or their config path). */
async function scratchProcesses(root: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const env = await readFile(`/proc/${e}/environ`, 'utf8').catch(() => '');
    const argv = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (env.includes(`LIFEBOAT_REDIS_SCRATCH=${root}/`) || argv.includes(`${root}/`)) out.push(Number(e));
  }
  return out;
}

async function dbsize(): Promise<number> {
  const c = redis.client();
  try {
    return await c.dbsize();
  } finally {
    c.disconnect();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-crash-redis-'));
  scratchDir = join(dir, 'scratch');
  redis = await startTestRedis();
  const c = redis.client();
  for (let i = 0; i < KEYS; i += 2000) {
    const p = c.pipeline();
    for (let k = i; k < Math.min(KEYS, i + 2000); k++) p.set(`data:${k}`, randomBytes(1024));
    await p.exec();
  }
  // Slow enough to be caught mid-way (heartbeats reach the server every 3 s): the server
  // sleeps 60 µs per key while it writes the snapshot (a setting Redis' own tests use),
  // and the replay sends one RESTORE at a time.
  await c.config('SET', 'rdb-key-save-delay', '60');
  c.disconnect();
  const base = parse(readFileSync(process.env.LIFEBOAT_CONFIG!, 'utf8')) as Record<string, Record<string, unknown>>;
  const repo = env.config.repository;
  const doc = {
    ...base,
    temporal: { ...base.temporal, taskQueue: env.taskQueue, ...CRASH_HEARTBEAT_TIMEOUT },
    repository: { ...base.repository, ...(repo.kind === 's3' ? { prefix: repo.prefix } : {}) },
    targets: { 'cache-redis': { kind: 'redis', host: '127.0.0.1', port: redis.port, password: { file: redis.passwordFile }, scratchDir, restore: { mode: 'replay', inFlight: 1 } } },
    schedules: { idPrefix: env.config.schedules!.idPrefix },
  };
  configFile = join(dir, 'lifeboat.yaml');
  await writeFile(configFile, stringify(doc));
  await workers.open(env.config.temporal);
});

afterAll(async () => {
  await workers.close();
  await redis?.remove();
  await rm(dir, { recursive: true, force: true });
  const cfg = env.config.repository as S3RepositoryConfig;
  await removePrefix(await adminClient(cfg), cfg.bucket, `${cfg.prefix}/`);
});

test('killed mid-upload of the backup and mid-replay of the restore, the in-place drill completes with every marker and key', async () => {
  const { id, handle } = await drill('in-place');
  await workers.crashAt(`${id}/backup`, 'backupItem', (hb) => hb.stage === 'upload' && (hb.bytes ?? 0) > 0);
  // Keys are being loaded: the retry finds its own in-progress key and starts over from an empty server.
  await workers.crashAt(`${id}/restore`, 'restoreItem', (hb) => hb.stage === 'restore' && (hb.bytes ?? 0) > 0);
  const r = (await handle.result()) as DrillResult;
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers).toMatchObject({ expected: 97, found: 97 });
  expect(await dbsize()).toBe(KEYS + 97);
  const c = redis.client();
  expect(await c.exists(IN_PROGRESS_KEY)).toBe(0);
  c.disconnect();
  await expectCleanRepository(r.backupId);
});

test('killed while the scratch copy is being restored, the scratch drill completes and leaves no scratch server or folder', async () => {
  const before = await dbsize();
  const { id, handle } = await drill('scratch');
  // The scratch folder exists and the RDB is on its way into it (or the scratch server is loading it).
  await workers.crashAt(`${id}/restore`, 'restoreItem', (hb) => hb.stage === 'restore');
  const r = (await handle.result()) as DrillResult;
  expect(r.ok).toBe(true);
  expect(r.mode).toBe('scratch');
  expect(r.stores[0]!.markers).toMatchObject({ expected: 97, found: 97 });
  expect(await scratchProcesses(scratchDir)).toEqual([]);
  expect(existsSync(join(scratchDir, 'cache-redis')) ? await readdir(join(scratchDir, 'cache-redis')) : []).toEqual([]);
  // The server itself was only read: the new markers added, nothing dropped.
  expect(await dbsize()).toBe(before + 97);
  await expectCleanRepository(r.backupId);
});
