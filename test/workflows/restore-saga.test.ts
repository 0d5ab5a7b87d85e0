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

/** The restore saga against real servers: writer hooks (each its own activity), approval, locks, checks. */
jest.setTimeout(300_000);
const env = testEnv('saga', { databases: 2 });
const db = env.databases[0]!;
/** A second database with its own worker and task queue, where a 125 s migration runs meanwhile. */
const slowDb = env.databases[1]!;
let dir: string;
let log: string;
let ready: Server;
let readyStatus = 200;
let h: Harness;
let config: Config;
let slow: { harness: Harness; result: Promise<RestoreResult>; log: string } | undefined;

/** A hook that appends a word (and, with `env`, its LIFEBOAT_* variables) to a log file: argv, no shell. */
const note = (word: string, opts: { sleepMs?: number; file?: string; timeoutSeconds?: number; env?: boolean } = {}): Hook => ({
  command: [
    process.execPath,
    '-e',
    `const fs = require('fs'); const [file, word, ms, env] = process.argv.slice(1);
     const vars = env === 'env' ? ' ' + JSON.stringify(Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('LIFEBOAT_')))) : '';
     fs.appendFileSync(file, word + vars + '\\n'); if (Number(ms)) setTimeout(() => fs.appendFileSync(file, word + ' done\\n'), Number(ms));`,
    opts.file ?? log,
    word,
    String(opts.sleepMs ?? 0),
    opts.env ? 'env' : '',
  ],
  timeoutSeconds: opts.timeoutSeconds ?? 30,
  retries: 0,
});

function withTarget(c: Config, patch: Partial<TargetConfig>, databases = [db]): Config {
  const t = c.targets.get('app-pg')!;
  return { ...c, targets: new Map([['app-pg', { ...t, ...patch, settings: { ...t.settings, databases } }]]) };
}

const logged = async (file = log) => (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
const words = async () => (await logged()).map((l) => l.split(' ')[0]);
const newId = () => makeBackupId(new Date(), randomBytes(2).toString('hex'));
const start = <T>(type: string, input: unknown) => h.start<T>(type, input);

async function stageOf(handle: { query: <R>(q: string) => Promise<R> }, stage: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await handle.query<{ stage: string }>('progress')).stage === stage) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the run never reached stage '${stage}'`);
}

async function withHarness<T>(c: Config, fn: () => Promise<T>): Promise<T> {
  await h.stop();
  h = await startHarness(c);
  try {
    return await fn();
  } finally {
    await h.stop();
    h = await startHarness(config);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-saga-'));
  log = join(dir, 'writers.log');
  ready = createServer((_req, res) => res.writeHead(readyStatus).end(readyStatus === 200 ? 'ok' : 'not yet'));
  await new Promise<void>((r) => ready.listen(0, '127.0.0.1', r));
  const checks: TargetChecks = { readyUrl: `http://127.0.0.1:${(ready.address() as AddressInfo).port}/readyz`, readyTimeoutSeconds: 3, sql: [] };
  config = withTarget(withTaskQueue(env.config, env.taskQueue), {
    hooks: { stopWriters: [note('stop', { env: true })], startWriters: [note('start', { env: true })], postRestore: [note('migrate', { env: true })] },
    checks,
  });
  await createDatabase(config, db);
  await seedApp(config, db, 100);

  // A migration of 125 s, with a timeout of 300 s: longer than any fixed activity timeout (2 minutes), run once.
  await createDatabase(config, slowDb);
  await seedApp(config, slowDb, 10);
  const slowLog = join(dir, 'slow.log');
  const slowTarget = withTarget(withTaskQueue(env.config, `${env.taskQueue}-slow`), { hooks: { stopWriters: [], startWriters: [], postRestore: [note('migrate', { sleepMs: 125_000, file: slowLog, timeoutSeconds: 300 })] } }, [slowDb]);
  // Its own id prefix: its lock (lock/<prefix>-slow/app-pg) is not the other tests' (lock/<prefix>/app-pg), as for two deployments sharing a namespace.
  const slowConfig: Config = { ...slowTarget, schedules: { ...slowTarget.schedules!, idPrefix: `${config.schedules!.idPrefix}-slow` } };
  const harness = await startHarness(slowConfig);
  const slowBackup = newId();
  await harness.run('backupWorkflow', { targets: ['app-pg'], backupId: slowBackup });
  slow = { harness, log: slowLog, result: harness.run<RestoreResult>('restoreWorkflow', { backupId: slowBackup, yes: true }) };
  slow.result.catch(() => undefined);

  h = await startHarness(config);
});

afterAll(async () => {
  await h?.stop();
  await slow?.harness.stop();
  await new Promise((r) => ready.close(r));
  await dropDatabase(config, db);
  await dropDatabase(config, slowDb);
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

test('a restore stops writers, restores, runs the post-restore hook, starts writers, then checks readiness; hooks get the run as LIFEBOAT_* variables', async () => {
  const backupId = await backup();
  await rm(log, { force: true });
  const { handle, result } = await start<RestoreResult>('restoreWorkflow', { backupId, yes: true });
  const r = await result;
  expect(await words()).toEqual(['stop', 'migrate', 'start']);
  expect(r.steps).toEqual(expect.arrayContaining(['approved by --yes', expect.stringMatching(/^app-pg: stop writers \(/), expect.stringMatching(/^app-pg: check ready http/)]));
  const env = (await logged()).map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)) as Record<string, string>);
  expect(env[0]).toEqual({
    LIFEBOAT_TARGET: 'app-pg',
    LIFEBOAT_KIND: 'postgres',
    LIFEBOAT_PHASE: 'stopWriters',
    LIFEBOAT_OPERATION: 'restore',
    LIFEBOAT_MODE: 'in-place',
    LIFEBOAT_BACKUP_ID: backupId,
    LIFEBOAT_WORKFLOW_ID: handle.workflowId,
    LIFEBOAT_ATTEMPT: '1',
    LIFEBOAT_ITEMS: `globals ${db}`,
    LIFEBOAT_RESTORED_INTO: `globals ${db}`,
  });
  expect(env[1]).toMatchObject({ LIFEBOAT_PHASE: 'postRestore' });
  expect(env[2]).toMatchObject({ LIFEBOAT_PHASE: 'startWriters', LIFEBOAT_OUTCOME: 'success' });
});

test('writers are started again after a failed restore, the database keeps its rows, and the failure says nothing was dropped', async () => {
  const backupId = await backup();
  const repoCfg = config.repository as S3RepositoryConfig;
  await (await s3Client(repoCfg)).send(new PutObjectCommand({ Bucket: repoCfg.bucket, Key: `${repoCfg.prefix}/${artifactKey('app-pg', backupId, `${db}.dump.zst.age`)}`, Body: 'garbage' }));
  const rows = await countRows(config, db);
  await rm(log, { force: true });
  const f = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
  expect(f.type).toBe('ChecksumMismatch');
  expect(f.message).toMatch(/failed its checksum .*; nothing was dropped or restored yet; writers were started again$/);
  expect(await words()).toEqual(['stop', 'start']);
  expect((await logged())[1]).toContain('"LIFEBOAT_OUTCOME":"failed"');
  expect(await countRows(config, db)).toBe(rows);
});

/** A start-writers hook that logs 'start' and how many processes of the slow migration still run as it starts, then takes 2 s. */
const startAfterMigration = (file: string): Hook => ({
  command: [
    process.execPath,
    '-e',
    `const { execSync } = require('child_process'); const fs = require('fs');
     const running = execSync("pgrep -f 'migrate-slow[l]y' || true", { encoding: 'utf8' }).trim().split('\\n').filter(Boolean);
     fs.appendFileSync(process.argv[1], 'start running=' + running.length + ' ' + JSON.stringify({ LIFEBOAT_OUTCOME: process.env.LIFEBOAT_OUTCOME }) + '\\n');
     setTimeout(() => undefined, 2000);`,
    file,
  ],
  timeoutSeconds: 30,
  retries: 0,
});

test('writers are started again after a cancelled restore, once the cancelled hook has stopped, and the target stays locked until they are', async () => {
  const backupId = await backup();
  const slowMigration = withTarget(config, { hooks: { stopWriters: [note('stop')], startWriters: [startAfterMigration(log)], postRestore: [note('migrate-slowly', { sleepMs: 20_000 })] } });
  await withHarness(slowMigration, async () => {
    await rm(log, { force: true });
    const { handle, result } = await start('restoreWorkflow', { backupId, yes: true });
    await stageOf(handle, 'post-restore');
    await handle.cancel();
    for (let i = 0; i < 300 && !(await words()).includes('start'); i++) await new Promise((r) => setTimeout(r, 100));
    // While writers are being started the target is still the cancelled restore's: no backup or prune slips in.
    const lock = h.client.workflow.getHandle(`lock/${config.schedules!.idPrefix}/app-pg`);
    expect((await lock.describe()).status.name).toBe('RUNNING');
    const f = await failureOf(result);
    expect(f.message).toMatch(/cancel/i);
    expect((await lock.describe()).status.name).not.toBe('RUNNING');
    expect(await words()).toEqual(['stop', 'migrate-slowly', 'start']);
    // The run waited for the migration it cancelled to be stopped before it started the writers.
    expect((await logged())[2]).toBe('start running=0 {"LIFEBOAT_OUTCOME":"cancelled"}');
  });
});

test('a failing hook runs once, fails the restore naming the hook, its status, its output and the target state, and writers are still started', async () => {
  const backupId = await backup();
  const counter = join(dir, 'attempts');
  const failing = withTarget(config, {
    hooks: { stopWriters: [{ command: ['sh', '-c', `echo x >> ${counter}; echo "cannot stop: app busy" >&2; exit 3`], timeoutSeconds: 10, retries: 0 }], startWriters: [note('start')], postRestore: [] },
  });
  await withHarness(failing, async () => {
    await rm(log, { force: true });
    const f = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
    expect(f.type).toBe('HookFailed');
    expect(f.message).toBe(
      `stopWriters hook 1 of target app-pg failed: hook 'sh -c echo x >> ${counter}; echo "cannot stop: app busy" >&2; exit 3' exited with status 3; its last output: cannot stop: app busy; nothing was verified, dropped or restored; writers were started again`,
    );
    expect(await words()).toEqual(['start']);
    expect(await logged(counter)).toEqual(['x']);
  });
});

test('a hook killed by a signal fails at once, naming the signal; a hook with retries is run again that often', async () => {
  const backupId = await backup();
  const counter = join(dir, 'flaky');
  const killed = withTarget(config, {
    hooks: {
      stopWriters: [
        // Fails twice, then succeeds: retries 2 gives it three attempts.
        { command: ['sh', '-c', `echo x >> ${counter}; [ $(wc -l < ${counter}) -ge 3 ]`], timeoutSeconds: 10, retries: 2 },
        { command: ['sh', '-c', 'kill -9 $$'], timeoutSeconds: 600, retries: 0 },
      ],
      startWriters: [note('start')],
      postRestore: [],
    },
  });
  await withHarness(killed, async () => {
    const f = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
    expect(f.type).toBe('HookFailed');
    expect(f.message).toMatch(/^stopWriters hook 2 of target app-pg failed: hook 'sh -c kill -9 \$\$' was killed by signal SIGKILL; it printed nothing; nothing was verified/);
    expect(await logged(counter)).toEqual(['x', 'x', 'x']);
    expect(await words()).toEqual(['start']);
  });
});

test('a readiness check that fails after the restore fails the run; writers were started first', async () => {
  const backupId = await backup();
  readyStatus = 503;
  await rm(log, { force: true });
  const f = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
  expect(f.type).toBe('CheckFailed');
  expect(f.message).toMatch(/^readiness URL http:\/\/127\.0\.0\.1:\d+\/readyz did not answer 2xx within 3s \(last: answered 503\)$/);
  expect(await words()).toEqual(['stop', 'migrate', 'start']);
});

test('a dry run plans and changes nothing', async () => {
  const backupId = await backup();
  await pg(config, db, (c) => c.query("INSERT INTO tenants (name) VALUES ('after')"));
  const rows = await countRows(config, db);
  await rm(log, { force: true });
  const r = await (await start<RestoreResult>('restoreWorkflow', { backupId, dryRun: true })).result;
  expect(r.dryRun).toBe(true);
  expect(r.plan.targets[0]).toMatchObject({ mode: 'in-place' });
  expect(r.plan.targets[0]!.artifacts).toContainEqual(expect.objectContaining({ name: db, into: db }));
  expect(r.plan.bytes).toBe(r.plan.targets[0]!.artifacts.reduce((s, a) => s + a.bytes, 0));
  expect(await logged()).toEqual([]);
  expect(await countRows(config, db)).toBe(rows);
});

test('a copy under another name touches nothing of the target: no writer hooks, no post-restore hook, no readiness check', async () => {
  const backupId = await backup();
  const copy = `${db}_copy`;
  readyStatus = 503; // the application's readiness is not the copy's business
  try {
    const r = await (await start<RestoreResult>('restoreWorkflow', { backupId, yes: true, only: { 'app-pg': [db] }, into: { 'app-pg': { [db]: copy } } })).result;
    expect(r.plan.targets[0]).toMatchObject({ mode: 'copy' });
    expect(await logged()).toEqual([]);
    expect(await countRows(config, copy)).toBe(await countRows(config, db));
  } finally {
    await dropDatabase(config, copy);
  }
});

test('a restore waiting for approval holds nothing (a backup runs meanwhile); once approved it takes the lock, and a second restore is refused naming the holder', async () => {
  const backupId = await backup();
  const slowStop = withTarget(config, { hooks: { stopWriters: [note('stop-slowly', { sleepMs: 8000 })], startWriters: [note('start')], postRestore: [] } });
  await withHarness(slowStop, async () => {
    const first = await start<RestoreResult>('restoreWorkflow', { backupId });
    await stageOf(first.handle, 'awaiting approval');
    const progress = await first.handle.query<{ detail: string }>('progress');
    expect(progress.detail).toContain(`lifeboat approve ${first.handle.workflowId}`);
    // Not blocked by the waiting approval.
    const during = await (await start<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId: newId() })).result;
    expect(during.targets[0]!.target).toBe('app-pg');

    await first.handle.signal('approve', { by: 'alice@ops' });
    await stageOf(first.handle, 'stop writers');
    const second = await failureOf((await start('restoreWorkflow', { backupId, yes: true })).result);
    expect(second.type).toBe('TargetBusy');
    expect(second.message).toContain(`target 'app-pg' is busy: the restore ${first.handle.workflowId} holds it (lock lock/${config.schedules!.idPrefix}/app-pg)`);

    const waiting = await start<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId: newId() });
    await stageOf(waiting.handle, 'waiting');
    const r = await first.result;
    expect(r.approvedBy).toBe('alice@ops');
    expect((await waiting.result).targets[0]!.target).toBe('app-pg');
  });
});

test('a hook with a timeout of 300 s may run for 125 s: it succeeds, run once', async () => {
  const r = await slow!.result;
  expect(r.steps).toEqual(expect.arrayContaining([expect.stringMatching(/^app-pg: post-restore \(/)]));
  expect(await logged(slow!.log)).toEqual(['migrate', 'migrate done']);
});
