import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { S3RepositoryConfig } from '../../src/config';
import { desiredSchedules } from '../../src/domain/schedules';
import { adminClient, removePrefix } from '../contract/bucket-kind';
import { startTestRedis, type TestRedis } from '../contract/redis-kind';
import { lifeboat } from '../helpers/cli';
import { testEnv } from '../helpers/env';

/**
 * The redis kind through the `lifeboat` command as an operator runs it (built
 * CLI, a worker in the same process, the stack's Temporal and MinIO): backup,
 * ls, verify (the RDB parsed and its CRC-64 checked), a scratch drill,
 * report, prune, and a restore refused because the server is not empty.
 */
jest.setTimeout(300_000);

const env = testEnv('rediscli');
let dir: string;
let configFile: string;
let redis: TestRedis;
let backupId = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-redis-cli-'));
  redis = await startTestRedis();
  const c = redis.client();
  await c.set('app:config', 'v1');
  await c.select(2);
  await c.set('session:1', 'x', 'EX', 3600);
  c.disconnect();
  const base = parse(readFileSync(process.env.LIFEBOAT_CONFIG!, 'utf8')) as Record<string, Record<string, unknown>>;
  const repo = env.config.repository;
  const doc = {
    ...base,
    temporal: { ...base.temporal, taskQueue: env.taskQueue },
    repository: { ...base.repository, ...(repo.kind === 's3' ? { prefix: repo.prefix } : {}) },
    targets: { 'cache-redis': { kind: 'redis', host: '127.0.0.1', port: redis.port, password: { file: redis.passwordFile }, scratchDir: join(dir, 'scratch') } },
    schedules: { ...(base.schedules ?? {}), idPrefix: env.config.schedules!.idPrefix },
  };
  configFile = join(dir, 'lifeboat.yaml');
  await writeFile(configFile, stringify(doc));
});

afterAll(async () => {
  await redis?.remove();
  await rm(dir, { recursive: true, force: true });
  const cfg = env.config.repository as S3RepositoryConfig;
  await removePrefix(await adminClient(cfg), cfg.bucket, `${cfg.prefix}/`);
});

test('backup, ls and verify know the redis kind', async () => {
  const b = await lifeboat(configFile, '--json', 'backup', 'cache-redis', '--with-worker');
  expect(b.code).toBe(0);
  backupId = (JSON.parse(b.stdout) as { result: { backupId: string } }).result.backupId;
  const ls = await lifeboat(configFile, 'ls', 'cache-redis');
  expect(ls.code).toBe(0);
  expect(ls.stdout).toContain(backupId);
  const v = await lifeboat(configFile, 'verify', backupId, '--with-worker');
  expect(v.code).toBe(0);
  expect(v.stdout).toMatch(/RDB version 10 from Redis 7\.0\.\d+: 2 keys in db0 1, db2 1 \(1 with TTL\); CRC-64 ok/);
});

test('a scratch drill passes and report shows it', async () => {
  const d = await lifeboat(configFile, 'drill', '--target', 'cache-redis', '--mode', 'scratch', '--with-worker');
  expect(d.stderr + d.stdout).toMatch(/drill ok: cache-redis \(redis\): .* 97\/97 markers/);
  expect(d.code).toBe(0);
  const r = await lifeboat(configFile, 'report');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/cache-redis\s+redis\s+\d{8}T\d{6}Z-[0-9a-f]+\s+.*ok/);
});

test('prune knows the target; a restore into a server that holds keys is refused, naming them', async () => {
  const p = await lifeboat(configFile, 'prune', 'cache-redis', '--dry-run', '--with-worker');
  expect(p.code).toBe(0);
  const plan = await lifeboat(configFile, 'restore', backupId, '--target', 'cache-redis', '--dry-run', '--with-worker');
  expect(plan.code).toBe(0);
  expect(plan.stdout).toMatch(/NOTE: restoring target cache-redis loads the backup's keys into every database of the Redis server at 127\.0\.0\.1:\d+ with RESTORE; it refuses if any of them holds keys/);
  const r = await lifeboat(configFile, 'restore', backupId, '--target', 'cache-redis', '--yes', '--with-worker');
  expect(r.code).not.toBe(0);
  expect(r.stderr + r.stdout).toMatch(/db 0 holds \d+ keys, db 2 holds 1 key; a replay restore loads only into empty databases.*restore\.flush: true/);
  const c = redis.client();
  expect(await c.get('app:config')).toBe('v1');
  c.disconnect();
});

test('schedule apply plans a nightly backup for a redis target', () => {
  const s = desiredSchedules([{ name: 'cache-redis', kind: 'redis' }]);
  expect(s[0]).toMatchObject({ id: 'lifeboat-backup-cache-redis', workflowType: 'backupWorkflow', args: [{ targets: ['cache-redis'] }], description: 'nightly backup of cache-redis (redis)' });
});
