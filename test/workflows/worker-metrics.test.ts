import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackupResult, DrillResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { readManifest } from '../../src/repo/catalog';
import { lifeboat as run } from '../helpers/cli';
import { writeConfigFile } from '../helpers/config-file';
import { testEnv } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';
import { freePort } from '../../src/stores/child';
import { sample, startWorkerProcess, type WorkerProcess } from '../helpers/worker-process';

/** Tests read the manifests that the stack's signing key signed (or unsigned ones, where it has none). */
const anyTrust = () => ({ publicKeys: env.config.signing?.publicKeys ?? [], allowUnsigned: true });

/**
 * A `lifeboat worker` process as an operator runs it (the built CLI, a config
 * with `metrics:`): its Prometheus endpoint carries the Temporal SDK's series
 * and lifeboat's, whose values are those of the backup and drill it ran; its
 * logs are one line per event, JSON lines that parse, text lines without a
 * task token.
 */
jest.setTimeout(300_000);

const env = testEnv('metrics');
const db = env.databases[0]!;
let dir: string;
let configFile: string;
let port: number;
let worker: WorkerProcess | undefined;

const lifeboat = (...args: string[]) => run(configFile, ...args);
const scrape = async () => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
};
const labels = { target: 'app-pg', kind: 'postgres' };
const STARTED = /lifeboat worker on task queue/;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-metrics-'));
  port = await freePort();
  configFile = await writeConfigFile(dir, env, { metrics: { port } });
  await createDatabase(env.config, db);
  await seedApp(env.config, db, 50);
});

// A test that fails half-way must not leave its worker holding the metrics port for the next.
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
});

afterAll(async () => {
  await dropDatabase(env.config, db);
  await rm(dir, { recursive: true, force: true });
});

test('metrics: the SDK runtime series and per-target facts that match the backup and drill the worker ran; JSON logs parse line by line', async () => {
  worker = startWorkerProcess(configFile, ['--log-format', 'json', '--log-level', 'info']);
  await worker.waitFor(STARTED);

  const before = await scrape();
  // The SDK's own series: the worker's pollers on this file's task queue.
  expect(sample(before, 'temporal_num_pollers', { task_queue: env.taskQueue, poller_type: 'activity_task' })).toBeGreaterThan(0);
  expect(sample(before, 'lifeboat_temporal_sdk_metrics_up')).toBe(1);
  expect(sample(before, 'lifeboat_rpo_seconds', labels)).toBe(Infinity);
  expect(sample(before, 'lifeboat_last_backup_timestamp_seconds', labels)).toBe(0);
  expect(sample(before, 'lifeboat_backup_bytes_written_total', labels)).toBe(0);
  expect(sample(before, 'lifeboat_last_drill_success', labels)).toBeUndefined();
  expect(sample(before, 'process_resident_memory_bytes')).toBeGreaterThan(0);

  const b = await lifeboat('backup', 'app-pg', '--json');
  expect(b.code).toBe(0);
  const backup = JSON.parse(b.stdout).result as BackupResult;
  const repo = await openRepository(env.config);
  const m = await readManifest(repo, 'app-pg', backup.backupId, anyTrust());
  const stored = m.artifacts.reduce((s, a) => s + a.bytes, 0);

  const afterBackup = await scrape();
  expect(sample(afterBackup, 'lifeboat_last_backup_timestamp_seconds', labels)).toBe(Date.parse(m.finishedAt) / 1000);
  expect(sample(afterBackup, 'lifeboat_backup_bytes_written_total', labels)).toBe(stored);
  expect(sample(afterBackup, 'lifeboat_backups_completed_total', labels)).toBe(1);
  const rpo = sample(afterBackup, 'lifeboat_rpo_seconds', labels)!;
  expect(rpo).toBeGreaterThanOrEqual(0);
  expect(rpo).toBeLessThan(Infinity);

  const d = await lifeboat('drill', '--target', 'app-pg', '--json');
  expect(d.code).toBe(0);
  const drill = JSON.parse(d.stdout) as DrillResult & { workflowId: string };
  const s = drill.stores[0]!;
  const dm = await readManifest(repo, 'app-pg', drill.backupId, anyTrust());

  const afterDrill = await scrape();
  expect(sample(afterDrill, 'lifeboat_last_drill_success', labels)).toBe(1);
  expect(sample(afterDrill, 'lifeboat_drill_restore_seconds', labels)).toBe(s.restoreSeconds);
  expect(sample(afterDrill, 'lifeboat_drill_backup_seconds', labels)).toBe(s.backupSeconds);
  // The drill's backup is now the newest complete backup, and its bytes were counted too.
  expect(sample(afterDrill, 'lifeboat_last_backup_timestamp_seconds', labels)).toBe(Date.parse(dm.finishedAt) / 1000);
  expect(sample(afterDrill, 'lifeboat_backups_completed_total', labels)).toBe(2);
  expect(sample(afterDrill, 'lifeboat_backup_bytes_written_total', labels)).toBe(stored + dm.artifacts.reduce((n, a) => n + a.bytes, 0));
  // The SDK counted the activities it ran.
  expect(sample(afterDrill, 'temporal_activity_execution_latency_count', { activity_type: 'finishBackup', task_queue: env.taskQueue })).toBe(2);

  expect(await worker.stop()).toBe(0);
  const lines = worker.stderr().split('\n').filter((l) => l !== '');
  expect(lines.length).toBeGreaterThan(5);
  const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const e of events) {
    expect(e).toEqual(expect.objectContaining({ time: expect.any(String), level: expect.stringMatching(/^(trace|debug|info|warn|error)$/), msg: expect.any(String) }));
    expect(e).not.toHaveProperty('taskToken');
  }
  // lifeboat's activity logger, the SDK's worker and its native core all went through the one logger.
  expect(events.some((e) => e.msg === 'artifact stored' && e.activityType === 'backupItem' && e.workflowId === `backup/app-pg/${backup.backupId}`)).toBe(true);
  expect(events.some((e) => e.sdkComponent === 'worker' && e.msg === 'Worker state changed')).toBe(true);
  expect(events.some((e) => e.sdkComponent === 'core')).toBe(true);
  expect(events.some((e) => typeof e.metrics === 'string' && (e.metrics as string).endsWith(`:${port}/metrics`))).toBe(true);
  worker = undefined;
});

test('text logs: one line per event, each starting with its time and level, and never a task token', async () => {
  const b = await lifeboat('ls', '--json');
  const backupId = (JSON.parse(b.stdout).backups as Array<{ backupId: string }>)[0]!.backupId;
  // debug: the SDK's activity events carry every attribute of the activity, task token included.
  worker = startWorkerProcess(configFile, ['--log-format', 'text', '--log-level', 'debug']);
  await worker.waitFor(STARTED);
  const v = await lifeboat('verify', backupId, '--json');
  expect(v.code).toBe(0);
  expect(await worker.stop()).toBe(0);
  const lines = worker.stderr().split('\n').filter((l) => l !== '');
  for (const l of lines) {
    expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO |WARN |ERROR) \S/);
    expect(l).not.toMatch(/taskToken/);
  }
  expect(lines.some((l) => / activityType=verifyStoredArtifact /.test(l) && / attempt=1 /.test(l))).toBe(true);
  expect(lines.some((l) => l.includes(`lifeboat worker on task queue '${env.taskQueue}'`))).toBe(true);
  worker = undefined;
});

test('at level error the worker still says that it is up and that it stops, and nothing else below error', async () => {
  worker = startWorkerProcess(configFile, ['--log-level', 'error']);
  await worker.waitFor(STARTED);
  expect(await worker.stop()).toBe(0);
  const lines = worker.stderr().split('\n').filter((l) => l !== '');
  expect(lines.some((l) => / INFO  SIGTERM: shutting down; /.test(l))).toBe(true);
  const announced = (l: string) => STARTED.test(l) || /SIGTERM: shutting down/.test(l);
  expect(lines.filter((l) => !announced(l))).toEqual(lines.filter((l) => / ERROR /.test(l)));
  worker = undefined;
});

test('a metrics port that is taken fails the start with a usage error naming it, and leaves nothing running', async () => {
  const busy = startWorkerProcess(configFile, ['--log-level', 'error']);
  try {
    await busy.waitFor(STARTED);
    const second = startWorkerProcess(configFile, ['--log-level', 'error']);
    expect(await new Promise((resolve) => second.child.on('exit', resolve))).toBe(2);
    expect(second.stderr()).toContain(`metrics: 127.0.0.1:${port} is taken (another worker on this host?); set another metrics.port in the config`);
  } finally {
    await busy.stop();
  }
});

test('a log format that does not exist is a usage error', async () => {
  const r = await lifeboat('--log-format', 'xml', 'ls');
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("--log-format (or LIFEBOAT_LOG_FORMAT) must be 'text' or 'json', not 'xml'");
});
