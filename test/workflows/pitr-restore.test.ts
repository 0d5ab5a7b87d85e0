import type { Worker } from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import type { PitrBackupResult, PitrDrillResult, PitrRestoreResult } from '../../src/domain/pitr';
import { createWorker } from '../../src/worker';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lifeboat } from '../helpers/cli';
import { testEnv, withTaskQueue } from '../helpers/env';
import { LifeboatMetrics } from '../../src/worker/metrics';
import { freePort } from '../../src/stores/child';
import { createPitrCluster, type PitrCluster } from '../helpers/pitr-cluster';
import { failureOf, scheduledActivities, startHarness, type Harness } from '../helpers/temporal';

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
let dir: string;
let configFile: string;

async function startDbWorker(): Promise<void> {
  const { worker, connection } = await createWorker(cluster.config, { taskQueue: dbQueue });
  db = { worker, connection, running: worker.run() };
}


beforeAll(async () => {
  cluster = await createPitrCluster(env, { taskQueue: dbQueue });
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-pitrwf-'));
  configFile = join(dir, 'lifeboat.yaml');
  await cluster.writeConfigFile(configFile);
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
  if (dir) await rm(dir, { recursive: true, force: true });
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
    const ran = (await scheduledActivities(handle)).map((a) => a.type);
    expect(ran).not.toContain('pitrServer');
    expect(ran).not.toContain('runHooks');
  }
  expect(await cluster.pid()).toBe(pid);
});

test('ls shows the PITR backups and the window; report and the metrics give the age of the last archived WAL as the RPO; the CLI refuses a time outside the window', async () => {
  const ls = await lifeboat(configFile, '--json', 'ls');
  expect(ls.code).toBe(0);
  const pitr = JSON.parse(ls.stdout).pitr as Array<{ target: string; backups: Array<{ type: string }>; window: { earliest: string; latest: string } }>;
  expect(pitr.map((p) => p.target)).toEqual([cluster.target]);
  expect(pitr[0]!.backups.map((b) => b.type)).toEqual(['full', 'incr']);
  const human = await lifeboat(configFile, 'ls');
  expect(human.stdout).toContain(`PITR ${cluster.target} (pgBackRest`);
  expect(human.stdout).toContain(`recoverable ${pitr[0]!.window.earliest} .. `);

  await cluster.query('SELECT pg_switch_wal()');
  await cluster.query('CREATE TABLE IF NOT EXISTS touch (x int)');
  const [{ at }] = (await cluster.query<{ at: Date }>('SELECT pg_walfile_name(pg_switch_wal()) AS w, now() AS at')) as [{ at: Date }];
  for (let i = 0; i < 100; i++) {
    const [row] = await cluster.query<{ t: Date | null }>('SELECT last_archived_time AS t FROM pg_stat_archiver');
    if (row?.t && row.t >= at) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const r = await lifeboat(configFile, '--json', 'report');
  expect(r.code).toBe(0);
  const t = (JSON.parse(r.stdout).targets as Array<{ target: string; rpoSeconds: number; rpoFrom: string; lastBackup: unknown; pitr: { lastArchivedWal: string; inRepository: boolean } }>)[0]!;
  expect(t).toMatchObject({ target: cluster.target, rpoFrom: 'wal-archive', lastBackup: null, pitr: { inRepository: true } });
  // No logical backup was ever taken: the RPO is the archive's, not "never".
  expect(t.rpoSeconds).toBeGreaterThanOrEqual(0);
  expect(t.rpoSeconds).toBeLessThan(120);
  // The worker's lifeboat_rpo_seconds says the same (a dashboard must not show +Inf or the last dump's age for it).
  const metrics = new LifeboatMetrics(cluster.config);
  await metrics.refresh();
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`lifeboat_rpo_seconds{target="${cluster.target}"`));
  const rpo = Number(line?.split(' ').at(-1));
  expect(rpo).toBeGreaterThanOrEqual(0);
  expect(rpo).toBeLessThan(120);
  // A worker that cannot reach the server does not present the catalog's reading (which ages between
  // PITR backups) as the RPO: it falls back to the logical backups' (none here: +Inf), and says why once.
  const said: string[] = [];
  const t0 = cluster.config.targets.get(cluster.target)!;
  const away = new LifeboatMetrics({ ...cluster.config, targets: new Map([...cluster.config.targets, [cluster.target, { ...t0, settings: { ...t0.settings, port: await freePort() } }]]) });
  away.start({ warn: (m: string) => said.push(m) }, 3600, undefined);
  await away.settled();
  await away.refresh();
  away.stop();
  const awayLine = (await away.registry.metrics()).split('\n').find((l) => l.startsWith(`lifeboat_rpo_seconds{target="${cluster.target}"`));
  expect(awayLine?.split(' ').at(-1)).toBe('+Inf');
  expect(said.filter((m) => m.includes("the server's archiver could not be read"))).toHaveLength(1);

  const refused = await lifeboat(configFile, 'restore', cluster.target, '--to-time', '2001-01-01T00:00:00Z', '--yes');
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('The recoverable window is');
  expect(refused.stderr).toContain('Nothing was stopped or changed');
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
  const cleanup = (await scheduledActivities(handle)).filter((a) => a.type === 'pitrScratchCleanup');
  expect(cleanup.length).toBe(1);
  expect(cleanup[0]!.input.token).toMatch(/^[0-9a-f]{12}$/);
});
