import { PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config, S3RepositoryConfig, TargetConfig } from '../../src/config';
import type { Hook, TargetChecks } from '../../src/config/hooks';
import { artifactKey } from '../../src/domain/layout';
import { makeBackupId } from '../../src/domain/names';
import type { BackupResult, RestoreResult } from '../../src/domain/plan';
import { s3Client } from '../../src/repo/s3';
import { testEnv, withTaskQueue } from '../helpers/env';
import { countRows, createDatabase, dropDatabase, pg, seedApp } from '../helpers/pg';
import { failureOf, startHarness, type Harness } from '../helpers/temporal';

/** The restore saga against real servers: writer hooks, approval, locks, checks. */
const env = testEnv('saga');
const db = env.databases[0]!;
let dir: string;
let log: string;
let ready: Server;
let readyStatus = 200;
let h: Harness;
let config: Config;

/** A hook that appends a word to the test's log file: argv, no shell. */
const note = (word: string, extra: string[] = []): Hook => ({
  command: [process.execPath, '-e', "require('fs').appendFileSync(process.argv[1], process.argv[2] + '\\n'); if (process.argv[3]) setTimeout(() => {}, Number(process.argv[3]))", log, word, ...extra],
  timeoutSeconds: 30,
  retries: 0,
});

function withTarget(c: Config, patch: Partial<TargetConfig>): Config {
  const t = c.targets.get('app-pg')!;
  return { ...c, targets: new Map([['app-pg', { ...t, ...patch }]]) };
}

const logged = async () => (await readFile(log, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
const newId = () => makeBackupId(new Date(), randomBytes(2).toString('hex'));

const start = <T>(type: string, input: unknown) => h.start<T>(type, input);

async function stageOf(handle: { query: <R>(q: string) => Promise<R> }, stage: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await handle.query<{ stage: string }>('progress')).stage === stage) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the run never reached stage '${stage}'`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-saga-'));
  log = join(dir, 'writers.log');
  ready = createServer((_req, res) => res.writeHead(readyStatus).end(readyStatus === 200 ? 'ok' : 'not yet'));
  await new Promise<void>((r) => ready.listen(0, '127.0.0.1', r));
  const checks: TargetChecks = { readyUrl: `http://127.0.0.1:${(ready.address() as AddressInfo).port}/readyz`, readyTimeoutSeconds: 3, sql: [] };
  config = withTarget(withTaskQueue(env.config, env.taskQueue), {
    hooks: { stopWriters: [note('stop')], startWriters: [note('start')], postRestore: [note('migrate')] },
    checks,
  });
  h = await startHarness(config);
  await createDatabase(config, db);
  await seedApp(config, db, 100);
});

afterAll(async () => {
  await h?.stop();
  await new Promise((r) => ready.close(r));
  await dropDatabase(config, db);
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await rm(log, { force: true });
  readyStatus = 200;
});

async function backup(): Promise<string> {
  const backupId = newId();
  await (await start<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId })).result;
  return backupId;
}

test('a restore stops writers, restores, runs the post-restore hook, starts writers, then checks readiness', async () => {
  const backupId = await backup();
  await rm(log, { force: true });
  const r = await (await start<RestoreResult>('restoreWorkflow', { backupId, yes: true })).result;
  expect(await logged()).toEqual(['stop', 'migrate', 'start']);
  expect(r.steps).toEqual(expect.arrayContaining([expect.stringMatching(/^app-pg: stopped writers/), expect.stringMatching(/^app-pg: check ready http/)]));
});

test('writers are started again after a failed restore, and the database keeps its rows', async () => {
  const backupId = await backup();
  const repoCfg = config.repository as S3RepositoryConfig;
  await (await s3Client(repoCfg)).send(new PutObjectCommand({ Bucket: repoCfg.bucket, Key: `${repoCfg.prefix}/${artifactKey('app-pg', backupId, `${db}.dump.age`)}`, Body: 'garbage' }));
  const rows = await countRows(config, db);
  await rm(log, { force: true });
  const f = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
  expect(f.type).toBe('ChecksumMismatch');
  expect(await logged()).toEqual(['stop', 'start']);
  expect(await countRows(config, db)).toBe(rows);
});

test('writers are started again after a cancelled restore', async () => {
  const backupId = await backup();
  const slow = withTarget(config, { hooks: { stopWriters: [note('stop')], startWriters: [note('start')], postRestore: [note('migrate-slowly', ['20000'])] } });
  await h.stop();
  h = await startHarness(slow);
  try {
    await rm(log, { force: true });
    const { handle, result } = await start('restoreWorkflow', { backupId, yes: true });
    await stageOf(handle, 'post-restore');
    await handle.cancel();
    const f = await failureOf(result);
    expect(f.message).toMatch(/cancel/i);
    expect(await logged()).toEqual(['stop', 'migrate-slowly', 'start']);
  } finally {
    await h.stop();
    h = await startHarness(config);
  }
});

test('a failing hook fails the restore with its output, and writers are still started', async () => {
  const backupId = await backup();
  const failing = withTarget(config, {
    hooks: { stopWriters: [{ command: ['sh', '-c', 'echo "cannot stop: app busy" >&2; exit 3'], timeoutSeconds: 10, retries: 0 }], startWriters: [note('start')], postRestore: [] },
  });
  await h.stop();
  h = await startHarness(failing);
  try {
    await rm(log, { force: true });
    const f = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
    expect(f.type).toBe('HookFailed');
    expect(f.message).toBe(`hook 'sh -c echo "cannot stop: app busy" >&2; exit 3' exited with status 3; its last output: cannot stop: app busy`);
    expect(await logged()).toEqual(['start']);
  } finally {
    await h.stop();
    h = await startHarness(config);
  }
});

test('a readiness check that fails after the restore fails the run; writers were started first', async () => {
  const backupId = await backup();
  readyStatus = 503;
  await rm(log, { force: true });
  const f = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
  expect(f.type).toBe('CheckFailed');
  expect(f.message).toMatch(/^readiness URL http:\/\/127\.0\.0\.1:\d+\/readyz did not answer 2xx within 3s \(last: answered 503\)$/);
  expect(await logged()).toEqual(['stop', 'migrate', 'start']);
});

test('a dry run plans and changes nothing', async () => {
  const backupId = await backup();
  await pg(config, db, (c) => c.query("INSERT INTO tenants (name) VALUES ('after')"));
  const rows = await countRows(config, db);
  await rm(log, { force: true });
  const r = await (await start<RestoreResult>('restoreWorkflow', { backupId, dryRun: true })).result;
  expect(r.dryRun).toBe(true);
  expect(r.plan.targets[0]!.artifacts).toContainEqual(expect.objectContaining({ name: db, into: db }));
  expect(r.plan.bytes).toBeGreaterThan(0);
  expect(await logged()).toEqual([]);
  expect(await countRows(config, db)).toBe(rows);
});

test('two restores of one target cannot overlap; a backup waits for the restore and then runs', async () => {
  const backupId = await backup();
  const first = await start<RestoreResult>('restoreWorkflow', { backupId });
  await stageOf(first.handle, 'awaiting approval');

  const second = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
  expect(second.type).toBe('TargetBusy');
  expect(second.message).toMatch(/^target 'app-pg' is busy: another backup or restore of it is running/);

  const waiting = await start<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId: newId() });
  await stageOf(waiting.handle, 'waiting');
  await first.handle.signal('approve');
  await first.result;
  const b = await waiting.result;
  expect(b.targets[0]!.target).toBe('app-pg');
});
