import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load';
import { calendarToCron } from '../../src/domain/schedules';
import { openRepository } from '../../src/repo';
import { listBackups } from '../../src/repo/catalog';
import { stackConfig, testEnv, uniq } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

/**
 * `lifeboat schedule …` against the stack's real Temporal server: the built
 * CLI (npm run build) with a config whose task queue, repository prefix and
 * schedule id prefix are this file's own, and a real worker for the run a
 * trigger starts.
 */
const env = testEnv('schedule');
const db = env.databases[0]!;
const idPrefix = uniq('lbt');
const ids = {
  app: `${idPrefix}-backup-app-pg`,
  old: `${idPrefix}-backup-old-pg`,
  drill: `${idPrefix}-drill`,
  prune: `${idPrefix}-prune`,
};
let dir: string;
let withOld: string;
let withoutOld: string;
let h: Harness;

function lifeboat(configFile: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [join(__dirname, '../../bin/lifeboat'), '--config', configFile, ...args], { encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function json(configFile: string, ...args: string[]) {
  const r = await lifeboat(configFile, ...args, '--json');
  if (r.code !== 0) throw new Error(`lifeboat ${args.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Ids with this file's prefix that Temporal lists (eventually consistent). */
async function listed(): Promise<string[]> {
  const out: string[] = [];
  for await (const s of h.client.schedule.list()) if (s.scheduleId.startsWith(`${idPrefix}-`)) out.push(s.scheduleId);
  return out.sort();
}

async function until<T>(what: string, seconds: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-schedule-'));
  const base = stackConfig();
  // Without the stack's pitr: section: its PITR schedules are tested in test/unit/pitr.test.ts.
  const pg = { ...base.targets.get('app-pg')!.settings };
  delete pg.pitr;
  const config = (targets: Record<string, unknown>, backups: Record<string, string>) =>
    stringify({
      temporal: { ...base.temporal, taskQueue: env.taskQueue },
      repository: env.config.repository,
      encryption: base.encryption,
      signing: base.signing,
      targets,
      schedules: { idPrefix, timezone: 'UTC', backups },
    });
  withOld = join(dir, 'with-old.yaml');
  withoutOld = join(dir, 'without-old.yaml');
  await writeFile(withOld, config({ 'app-pg': { ...pg, databases: [db] }, 'old-pg': { ...pg, databases: [db] } }, { 'old-pg': '15 1 * * *' }));
  await writeFile(withoutOld, config({ 'app-pg': { ...pg, databases: [db] } }, {}));
  await createDatabase(env.config, db);
  await seedApp(env.config, db, 20);
  h = await startHarness(loadConfig(withOld));
});

afterAll(async () => {
  if (h) {
    for (const id of new Set([...Object.values(ids), ...(await listed())])) {
      await h.client.schedule
        .getHandle(id)
        .delete()
        .catch((err: unknown) => {
          if (!(err instanceof ScheduleNotFoundError)) throw err;
        });
    }
    await h.stop();
  }
  await dropDatabase(env.config, db);
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('apply creates one schedule per target, a drill and a prune: cron from config, overlap SKIP, on the config task queue', async () => {
  const r = await json(withOld, 'schedule', 'apply');
  expect(r.schedules.map((s: { id: string; result: string }) => [s.id, s.result])).toEqual([
    [ids.app, 'created'],
    [ids.old, 'created'],
    [ids.drill, 'created'],
    [ids.prune, 'created'],
  ]);
  const expected: Record<string, { cron: string; workflowType: string; args: unknown[] }> = {
    [ids.app]: { cron: '0 2 * * *', workflowType: 'backupWorkflow', args: [{ targets: ['app-pg'] }] },
    [ids.old]: { cron: '15 1 * * *', workflowType: 'backupWorkflow', args: [{ targets: ['old-pg'] }] },
    [ids.drill]: { cron: '0 4 * * *', workflowType: 'drillWorkflow', args: [{ mode: 'scratch' }] },
    [ids.prune]: { cron: '0 5 * * *', workflowType: 'pruneWorkflow', args: [{}] },
  };
  for (const [id, want] of Object.entries(expected)) {
    const d = await h.client.schedule.getHandle(id).describe();
    expect(d.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(d.policies.catchupWindow).toBe(3_600_000);
    expect(d.spec.calendars!.map(calendarToCron)).toEqual([want.cron]);
    expect(d.spec.timezone).toBe('UTC');
    expect(d.action).toMatchObject({ workflowType: want.workflowType, taskQueue: env.taskQueue, args: want.args });
    expect(d.state.paused).toBe(false);
  }
});

test('trigger runs the backup schedule now, and a worker on the task queue makes a backup in the repository', async () => {
  const repo = await openRepository(loadConfig(withOld));
  expect(await listBackups(repo, ['app-pg'])).toEqual([]);
  const r = await json(withOld, 'schedule', 'trigger', 'backup-app-pg');
  expect(r).toMatchObject({ ok: true, id: ids.app, skipped: false, started: { workflowId: expect.stringMatching(new RegExp(`^backup/app-pg/scheduled-${idPrefix}-\\d{4}-`)) } });
  const backups = await until('a backup of app-pg', 60, async () => {
    const b = await listBackups(repo, ['app-pg']);
    return b.length ? b : undefined;
  });
  expect(backups).toHaveLength(1);

  const run = await until('the scheduled run to complete', 30, async () => {
    const ls = await json(withOld, 'schedule', 'ls');
    const s = ls.schedules.find((x: { id: string }) => x.id === ids.app);
    return s?.lastRun?.status === 'COMPLETED' ? s : undefined;
  });
  expect(run).toMatchObject({ cron: '0 2 * * *', overlap: 'SKIP', paused: false, lastRun: { workflowId: r.started.workflowId } });
  expect(run.nextRuns[0]).toMatch(/T02:00:00\.000Z$/);

  // Found by target, with its outcome, like a run the CLI starts.
  const found = await until('the scheduled run by LifeboatTarget', 30, async () => {
    const ids: string[] = [];
    for await (const w of h.client.workflow.list({ query: `LifeboatTarget = 'app-pg' AND LifeboatOperation = 'backup' AND LifeboatOutcome = 'success' AND TaskQueue = '${env.taskQueue}'` })) ids.push(w.workflowId);
    return ids.includes(r.started.workflowId) ? ids : undefined;
  });
  expect(found).toContain(r.started.workflowId);
});

test('a run started with the stock temporal CLI, as docs/temporal.md shows, is found by target and gets its outcome', async () => {
  const temporal = join(process.env.LIFEBOAT_CACHE_DIR ?? join(homedir(), '.cache/lifeboat'), 'bin/temporal');
  const workflowId = `backup/app-pg/by-hand-${uniq('x')}`;
  await new Promise<void>((resolve, reject) =>
    execFile(
      temporal,
      ['workflow', 'start', '--address', env.config.temporal.address, '--task-queue', env.taskQueue, '--type', 'backupWorkflow', '--workflow-id', workflowId, '--input', '{"targets":["app-pg"]}'],
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  await h.client.workflow.getHandle(workflowId).result();
  const found = await until('the stock-CLI run by LifeboatTarget', 30, async () => {
    const ids: string[] = [];
    for await (const w of h.client.workflow.list({ query: `LifeboatTarget = 'app-pg' AND LifeboatOutcome = 'success' AND WorkflowId = '${workflowId}'` })) ids.push(w.workflowId);
    return ids.length ? ids : undefined;
  });
  expect(found).toEqual([workflowId]);
});

test('apply again changes nothing and makes no duplicates; a target removed from config loses its schedule', async () => {
  const again = await json(withOld, 'schedule', 'apply');
  expect(again.schedules.map((s: { result: string }) => s.result)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);
  expect(again.deleted).toEqual([]);
  // Listing is eventually consistent: wait until Temporal lists all four, then check there are no more.
  expect(await until('four listed schedules', 30, async () => ((await listed()).length >= 4 ? listed() : undefined))).toEqual(Object.values(ids).sort());

  const less = await json(withoutOld, 'schedule', 'apply');
  expect(less.schedules.map((s: { id: string }) => s.id)).toEqual([ids.app, ids.drill, ids.prune]);
  expect(less.deleted).toEqual([{ id: ids.old, description: 'nightly backup of old-pg (postgres)' }]);
  await expect(h.client.schedule.getHandle(ids.old).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
  const human = await lifeboat(withoutOld, 'schedule', 'apply');
  expect(human.stdout).toContain(`unchanged ${ids.app}  0 2 * * * UTC  backupWorkflow {"targets":["app-pg"]}`);
});

test('pause --all with a note, unpause one; apply leaves an operator’s pause alone', async () => {
  const p = await json(withoutOld, 'schedule', 'pause', '--all', '--note', 'maintenance window');
  expect(p.paused).toEqual([ids.app, ids.drill, ids.prune].sort());
  expect((await h.client.schedule.getHandle(ids.drill).describe()).state).toMatchObject({ paused: true, note: 'maintenance window' });

  await json(withoutOld, 'schedule', 'unpause', 'drill');
  expect((await h.client.schedule.getHandle(ids.drill).describe()).state.paused).toBe(false);

  const a = await json(withoutOld, 'schedule', 'apply');
  expect(a.schedules.find((s: { id: string }) => s.id === ids.app)).toMatchObject({ result: 'unchanged', paused: true, note: 'maintenance window' });

  const missing = await lifeboat(withoutOld, 'schedule', 'trigger', 'backup-nope', '--json');
  expect(missing.code).toBe(3); // not found
  expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, type: 'ScheduleNotFound', error: expect.stringContaining(`schedule '${idPrefix}-backup-nope' does not exist`) });
});
