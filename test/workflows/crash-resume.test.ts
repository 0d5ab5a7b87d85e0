import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { WorkflowHandle } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3RepositoryConfig } from '../../src/config';
import type { DrillResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { s3Client } from '../../src/repo/s3';
import { writeConfigFile } from '../helpers/config-file';
import { activityAttempts } from '../helpers/temporal';
import { CRASH_HEARTBEAT_TIMEOUT, CrashWorker } from '../helpers/crash';
import { testEnv } from '../helpers/env';
import { countRows, createDatabase, databaseExists, dropDatabase, pg } from '../helpers/pg';

/**
 * Kill -9 a real worker process in the middle of a backup and of a restore,
 * start a new one, and show the drill still completes with every marker, the
 * data, and nothing half-written in the repository.
 */
jest.setTimeout(600_000);

const env = testEnv('crash');
const db = env.databases[0]!;
const ROWS = 1_500_000;
let dir: string;
let configFile: string;
const workers = new CrashWorker(() => configFile);

async function expectCleanRepository(backupId: string): Promise<void> {
  const repo = await openRepository(env.config);
  const files = (await repo.list(`app-pg/${backupId}`)).map((e) => e.name).sort();
  expect(files).toEqual(['globals.sql.zst.age', 'globals.sql.zst.age.blocks', 'globals.sql.zst.age.sha256', 'manifest.json', 'manifest.json.sig', `${db}.dump.zst.age`, `${db}.dump.zst.age.blocks`, `${db}.dump.zst.age.sha256`].sort());
  const cfg = env.config.repository as S3RepositoryConfig;
  const open = await (await s3Client(cfg)).send(new ListMultipartUploadsCommand({ Bucket: cfg.bucket, Prefix: `${cfg.prefix}/` }));
  expect(open.Uploads ?? []).toEqual([]);
}

async function drill(mode: 'in-place' | 'scratch' = 'in-place'): Promise<{ id: string; handle: WorkflowHandle }> {
  const id = `drill/${env.taskQueue}/${randomBytes(3).toString('hex')}`;
  return { id, handle: await workers.client.workflow.start('drillWorkflow', { taskQueue: env.taskQueue, workflowId: id, args: [{ mode }] }) };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-crash-'));
  configFile = await writeConfigFile(dir, env, { temporal: CRASH_HEARTBEAT_TIMEOUT });
  await createDatabase(env.config, db);
  // Enough data that dumping, uploading, verifying and restoring each take a few seconds.
  await pg(env.config, db, (c) => c.query(`CREATE TABLE events AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body FROM generate_series(1, ${ROWS}) AS g`));
  await workers.open(env.config.temporal);
});

afterAll(async () => {
  await workers.close();
  await dropDatabase(env.config, db);
  await rm(dir, { recursive: true, force: true });
});

test('killed mid-upload of the backup and once the restore has dropped the database, the drill completes with every marker and row', async () => {
  const { id, handle } = await drill();
  await workers.crashAt(`${id}/backup`, 'backupItem', (hb) => hb.stage === 'upload' && (hb.bytes ?? 0) > 0);
  // Once the destructive part has begun (drop, recreate, pg_restore): the retry must start from a clean database.
  await workers.crashAt(`${id}/restore`, 'restoreItem', (hb) => hb.stage === 'drop' || hb.stage === 'restore');
  const r = (await handle.result()) as DrillResult;
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers).toMatchObject({ expected: 137, found: 137 });
  expect(await countRows(env.config, db, 'events')).toBe(ROWS);
  await expectCleanRepository(r.backupId);
});

test('killed as the dump starts and in the middle of verifying, the drill completes just the same', async () => {
  const { id, handle } = await drill();
  await workers.crashAt(`${id}/backup`, 'backupItem', (hb) => hb.stage === 'dump');
  await workers.crashAt(`${id}/restore`, 'verifyStoredArtifact', (hb) => hb.stage === 'verify' && (hb.bytes ?? 0) > 0);
  const r = (await handle.result()) as DrillResult;
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers.found).toBe(137);
  expect(await countRows(env.config, db, 'events')).toBe(ROWS);
  await expectCleanRepository(r.backupId);
});

test('killed while a scratch copy streams in (no verify pass before it), the retry verifies, replaces the half-made copy, and the drill completes', async () => {
  const before = await countRows(env.config, db, 'events');
  const { id, handle } = await drill('scratch');
  // The copy's name is new: the first attempt creates it and streams block-authenticated bytes into pg_restore.
  await workers.crashAt(`${id}/restore`, 'restoreNewItem', (hb) => hb.stage === 'restore' && (hb.bytes ?? 0) > 4 << 20);
  const r = (await handle.result()) as DrillResult;
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers).toMatchObject({ expected: 137, found: 137 });
  expect(await countRows(env.config, db, 'events')).toBe(before);
  expect(await databaseExists(env.config, `lifeboat_drill_${r.nonce.replace(/-/g, '').slice(0, 8)}`)).toBe(false);
  // A second attempt finished the restore: it found the copy the killed one had made, so it went the verify-then-replace way.
  expect(await activityAttempts(workers.client.workflow.getHandle(`${id}/restore`))).toContain(2);
  await expectCleanRepository(r.backupId);
});
