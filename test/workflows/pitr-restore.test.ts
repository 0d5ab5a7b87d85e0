import type { Worker } from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import { defaultPayloadConverter } from '@temporalio/common';
import type { PitrBackupResult, PitrDrillResult, PitrRestoreResult } from '../../src/domain/pitr';
import { createWorker } from '../../src/worker';
import { testEnv, withTaskQueue } from '../helpers/env';
import { createPitrCluster, type PitrCluster } from '../helpers/pitr-cluster';
import { failureOf, startHarness, type Harness } from '../helpers/temporal';

/**
 * The PITR workflows with a real worker beside the database on the target's
 * own task queue, another one for everything else, and a PostgreSQL cluster
 * of this test's own (never the stack's shared server).
 */
jest.setTimeout(900_000);

const env = testEnv('pitrwf');
const dbQueue = `${env.taskQueue}-db`;
let cluster: PitrCluster;
let h: Harness;
let db: { worker: Worker; connection: NativeConnection; running: Promise<void> } | undefined;

async function startDbWorker(): Promise<void> {
  const { worker, connection } = await createWorker(cluster.config, { taskQueue: dbQueue });
  db = { worker, connection, running: worker.run() };
}

async function activityTypes(workflowId: string): Promise<string[]> {
  const types: string[] = [];
  const hist = await h.client.workflow.getHandle(workflowId).fetchHistory();
  for (const e of hist.events ?? []) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) types.push(name);
  }
  return types;
}

beforeAll(async () => {
  cluster = await createPitrCluster(env, { taskQueue: dbQueue });
  h = await startHarness(withTaskQueue(cluster.config, env.taskQueue));
});

afterAll(async () => {
  await h?.stop();
  if (db) {
    db.worker.shutdown();
    await db.running;
    await db.connection.close();
  }
  await cluster?.destroy();
});

test("a target on its own task queue is served only by the worker that names it", async () => {
  const { handle, result } = await h.start<PitrBackupResult>('pitrBackupWorkflow', { target: cluster.target, type: 'full' });
  // With only the default worker running, the target's first activity waits on its queue.
  let pending: { name?: string | null; state?: number | null; queue?: string } | undefined;
  for (let i = 0; i < 300 && !pending; i++) {
    const d = await handle.describe();
    const pa = (d.raw.pendingActivities ?? []).find((a) => a.activityType?.name === 'pitrSetup');
    if (pa) pending = { name: pa.activityType?.name, state: pa.state };
    else await new Promise((r) => setTimeout(r, 100));
  }
  expect(pending?.name).toBe('pitrSetup');
  await new Promise((r) => setTimeout(r, 3000));
  const still = (await handle.describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'pitrSetup');
  expect(still?.attempt ?? 1).toBe(1);
  expect(still?.lastStartedTime ?? null).toBeNull();
  await startDbWorker();
  const r = await result;
  expect(r.ranOn).toBe(dbQueue);
  expect(r.type).toBe('full');
  expect(r.window).not.toBeNull();
});

test('an incremental backup, then a time outside the window is refused in the plan, before anything stops', async () => {
  await cluster.query('CREATE TABLE IF NOT EXISTS rows AS SELECT g AS id FROM generate_series(1, 1000) AS g');
  const incr = await h.run<PitrBackupResult>('pitrBackupWorkflow', { target: cluster.target, type: 'incr' });
  expect(incr.type).toBe('incr');
  const pid = await cluster.pid();
  for (const toTime of [new Date(Date.now() - 86_400_000).toISOString(), new Date(Date.now() + 86_400_000).toISOString()]) {
    const { handle, result } = await h.start<PitrRestoreResult>('pitrRestoreWorkflow', { target: cluster.target, toTime, yes: true });
    const f = await failureOf(result);
    expect(f.type).toBe('OutsideWindow');
    expect(f.message).toContain('The recoverable window is');
    expect(f.message).toContain(incr.window!.earliest);
    const ran = await activityTypes(handle.workflowId);
    expect(ran).not.toContain('pitrServer');
    expect(ran).not.toContain('runHooks');
  }
  expect(await cluster.pid()).toBe(pid);
});

test('a restore to a time between two marker batches lands exactly between them, and the server takes writes again', async () => {
  await cluster.query('CREATE TABLE IF NOT EXISTS batches (batch text NOT NULL, at timestamptz DEFAULT clock_timestamp())');
  await cluster.query("INSERT INTO batches (batch) SELECT 'A' FROM generate_series(1, 50)");
  const t = (await cluster.query<{ t: string }>(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`))[0]!.t;
  await new Promise((r) => setTimeout(r, 1500));
  await cluster.query("INSERT INTO batches (batch) SELECT 'B' FROM generate_series(1, 50)");
  const pid = await cluster.pid();

  const dry = await h.run<PitrRestoreResult>('pitrRestoreWorkflow', { target: cluster.target, toTime: t, dryRun: true });
  expect(dry.dryRun).toBe(true);
  expect(dry.plan.targetTime).toBe(t.replace('T', ' ').replace('Z', '+00'));
  expect(await cluster.pid()).toBe(pid);

  const r = await h.run<PitrRestoreResult>('pitrRestoreWorkflow', { target: cluster.target, toTime: t, yes: true });
  expect(r.steps.some((s) => s.includes('stopped the server'))).toBe(true);
  expect(r.steps.some((s) => s.includes('started the server'))).toBe(true);
  const counts = await cluster.query<{ batch: string; n: number }>('SELECT batch, count(*)::int AS n FROM batches GROUP BY batch ORDER BY batch');
  expect(counts).toEqual([{ batch: 'A', n: 50 }]);
  expect(Date.parse(r.lastReplayed!)).toBeLessThanOrEqual(Date.parse(t));
  expect(await cluster.pid()).not.toBe(pid);
  await cluster.query("INSERT INTO batches (batch) VALUES ('after-restore')");
});

test('the PITR drill proves batch A there and batch B absent in a scratch copy, and records its precision', async () => {
  const { handle, result } = await h.start<PitrDrillResult>('pitrDrillWorkflow', { target: cluster.target });
  const r = await result;
  expect(r.ok).toBe(true);
  expect(r.markersBefore).toEqual({ expected: 137, found: 137 });
  expect(r.markersAfter).toEqual({ expected: 137, found: 0 });
  expect(r.precisionSeconds).toBeGreaterThanOrEqual(0);
  expect(r.restoreSeconds).toBeGreaterThan(0);
  const hist = await h.client.workflow.getHandle(handle.workflowId).fetchHistory();
  const cleanup = (hist.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'pitrScratchCleanup');
  expect(cleanup.length).toBe(1);
  const input = defaultPayloadConverter.fromPayload(cleanup[0]!.activityTaskScheduledEventAttributes!.input!.payloads![0]!) as { token: string };
  expect(input.token).toMatch(/^[0-9a-f]{12}$/);
});
