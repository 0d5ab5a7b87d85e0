import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Config } from '../../src/config';
import type { Hook } from '../../src/config/hooks';
import type { DrillResult, RestoreResult } from '../../src/domain/plan';
import { testEnv, withTaskQueue } from '../helpers/env';
import { createDatabase, databaseExists, dropDatabase, pg } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

/**
 * A real writer process behind the target's hooks (test/fixtures/writer.js,
 * inserting a row every 20 ms): a scratch drill never stops it and runs no
 * hook of the target; an in-place drill stops it before it drops anything.
 */
jest.setTimeout(180_000);
const env = testEnv('isolation');
const db = env.databases[0]!;
const WRITER = join(__dirname, '../fixtures/writer.js');
let dir: string;
let hooksLog: string;
let h: Harness;
let config: Config;

const pgSettings = env.config.targets.get('app-pg')!.settings as { host: string; port: number; user: string };
const writerEnv = () => ({ PGHOST: pgSettings.host, PGPORT: String(pgSettings.port), PGUSER: pgSettings.user, PGPASSFILE: join(process.env.LIFEBOAT_STATE_DIR!, 'secrets/pgpass') });
const writer = (verb: 'start' | 'stop'): Hook => ({ command: [process.execPath, WRITER, verb, dir, db], env: writerEnv(), timeoutSeconds: 30, retries: 0 });
const noteHook = (word: string): Hook => ({ command: ['sh', '-c', `echo ${word} >> ${hooksLog}`], timeoutSeconds: 10, retries: 0 });
const writerLog = async () => (await readFile(join(dir, 'writer.log'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).map((l) => l.split(' ').slice(1).join(' '));
const writerPid = async () => Number(await readFile(join(dir, 'writer.pid'), 'utf8'));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const rowsBy = (pid: number) => pg(config, db, async (c) => Number((await c.query('SELECT count(*)::int AS n FROM writes WHERE pid = $1', [pid])).rows[0].n));

async function startWriter(): Promise<number> {
  await promisify(execFile)(process.execPath, [WRITER, 'start', dir, db], { env: { ...process.env, ...writerEnv() } });
  const pid = await writerPid();
  for (let i = 0; i < 100 && (await rowsBy(pid).catch(() => 0)) < 5; i++) await new Promise((r) => setTimeout(r, 100));
  return pid;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-isolation-'));
  hooksLog = join(dir, 'hooks.log');
  const base = withTaskQueue(env.config, env.taskQueue);
  const t = base.targets.get('app-pg')!;
  config = {
    ...base,
    targets: new Map([
      [
        'app-pg',
        {
          ...t,
          settings: { ...t.settings, globals: false },
          hooks: { stopWriters: [writer('stop')], startWriters: [writer('start')], postRestore: [noteHook('migrate')] },
          // True only in a drill's scratch copy: proves the drill's checks run there, not in production.
          checks: { readyTimeoutSeconds: 5, sql: [{ query: "SELECT current_database() LIKE 'lifeboat_drill_%'" }] },
        },
      ],
    ]),
  };
  await createDatabase(config, db);
  h = await startHarness(config);
});

afterAll(async () => {
  await h?.stop();
  await promisify(execFile)(process.execPath, [WRITER, 'stop', dir, db], { env: { ...process.env, ...writerEnv() } }).catch(() => undefined);
  await dropDatabase(config, db);
  await rm(dir, { recursive: true, force: true });
});

test('a scratch drill never stops the writer, runs none of the target hooks, and runs its checks against the copy', async () => {
  const pid = await startWriter();
  const before = await rowsBy(pid);
  const { handle, result } = await h.start<DrillResult>('drillWorkflow', { mode: 'scratch' });
  const r = await result;
  expect(r.stores[0]).toMatchObject({ target: 'app-pg', markers: { expected: 137, found: 137 } });
  expect(alive(pid)).toBe(true);
  expect(await writerPid()).toBe(pid);
  expect(await writerLog()).toEqual([`${pid} running`]);
  expect(await readFile(hooksLog, 'utf8').catch(() => '')).toBe('');
  expect(await rowsBy(pid)).toBeGreaterThan(before); // it kept writing through the drill
  const restore = (await h.client.workflow.getHandle(`${handle.workflowId}/restore`).result()) as RestoreResult;
  expect(restore.plan.targets[0]!.mode).toBe('copy');
  expect(restore.steps).toContainEqual(expect.stringMatching(/^app-pg: check SELECT current_database\(\) LIKE 'lifeboat_drill_%' in lifeboat_drill_[0-9a-f]{8}$/));
  // The scratch copy is gone.
  const copy = /in (lifeboat_drill_[0-9a-f]{8})$/.exec(restore.steps.find((s) => s.startsWith('app-pg: check'))!)![1]!;
  expect(await databaseExists(config, copy)).toBe(false);
});

test('an in-place drill stops the writer before it drops anything, and starts it again', async () => {
  const first = await writerPid();
  if (!alive(first)) await startWriter();
  const pid = await writerPid();
  const noCheck = { ...config, targets: new Map([['app-pg', { ...config.targets.get('app-pg')!, checks: undefined }]]) };
  await h.stop();
  h = await startHarness(noCheck);
  const r = await h.run<DrillResult>('drillWorkflow', { mode: 'in-place' });
  expect(r.ok).toBe(true);
  const lines = await writerLog();
  const next = await writerPid();
  expect(next).not.toBe(pid);
  expect(alive(next)).toBe(true);
  // Stopped cleanly before the drop: it never saw its database missing.
  expect(lines.filter((l) => l.includes('error'))).toEqual([]);
  expect(lines.slice(-4)).toEqual([`${pid} running`, `${pid} stopping`, `${pid} stopped`, `${next} running`].slice(-4));
  expect(await readFile(hooksLog, 'utf8')).toBe('migrate\n');
});
