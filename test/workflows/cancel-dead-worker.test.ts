import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load';
import { makeBackupId } from '../../src/domain/names';
import { writeConfigFile } from '../helpers/config-file';
import { CRASH_HEARTBEAT_TIMEOUT, startWorkerProcess, waitForActivity } from '../helpers/crash';
import { testEnv } from '../helpers/env';
import { createDatabase, dropDatabase, holdTableLock, pg } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

/**
 * A run cancelled while the worker of its running activity is dead (a worker
 * beside the database, its own task queue): the cancel cannot reach the
 * activity, so the run waits for the heartbeat timeout, and then ends as
 * cancelled, not failed, with its target's lock released.
 */
jest.setTimeout(300_000);
const env = testEnv('canceldead');
const db = env.databases[0]!;
const nearQueue = `${env.taskQueue}-near`;
let dir: string;
let configFile: string;
let h: Harness;
let near: ChildProcess | undefined;
const dumps = () => spawnSync('pgrep', ['-f', `pg_dump.*${db}`], { encoding: 'utf8' }).stdout.trim();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-canceldead-'));
  configFile = await writeConfigFile(dir, env, { temporal: CRASH_HEARTBEAT_TIMEOUT });
  const doc = parse(await readFile(configFile, 'utf8')) as { targets: Record<string, Record<string, unknown>> };
  doc.targets['app-pg']!.taskQueue = nearQueue;
  await writeFile(configFile, stringify(doc));
  await createDatabase(env.config, db);
  await pg(env.config, db, (c) => c.query('CREATE TABLE rows AS SELECT g AS id FROM generate_series(1, 1000) g'));
  // The workflows' worker stays up throughout; only the one beside the database dies.
  h = await startHarness(loadConfig(configFile));
});

afterAll(async () => {
  near?.kill('SIGKILL');
  await h?.stop();
  await dropDatabase(env.config, db);
  await rm(dir, { recursive: true, force: true });
});

test('a backup cancelled while the worker of its dump is dead ends as cancelled once the heartbeat timeout has passed, and frees its target', async () => {
  // The dump waits on a table lock held here, so it is still running when its worker is killed.
  const lock = await holdTableLock(env.config, db, 'rows');
  try {
    // `lifeboat worker --targets app-pg`: the activity worker beside the database.
    near = await startWorkerProcess(configFile, ['--targets', 'app-pg']);
    const { handle, result } = await h.start('backupWorkflow', { targets: ['app-pg'], backupId: makeBackupId(new Date(), randomBytes(2).toString('hex')) });
    await waitForActivity(h.client, handle.workflowId, 'backupItem', (hb) => hb.stage === 'dump' && dumps() !== '');
    near.kill('SIGKILL');
    await handle.cancel();
    // Nobody can confirm the cancel: the server ends the activity by its heartbeat timeout (10 s), and does not retry it.
    const err = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    const history = await handle.fetchHistory();
    expect((history.events ?? []).some((e) => e.activityTaskTimedOutEventAttributes)).toBe(true);
    const lock = h.client.workflow.getHandle(`lock/${env.config.schedules!.idPrefix}/app-pg`);
    expect((await lock.describe()).status.name).not.toBe('RUNNING');
  } finally {
    await lock.release();
  }
  // The dead worker's pg_dump ends once it can write again (its reader is gone).
  for (let i = 0; i < 100 && dumps(); i++) await new Promise((r) => setTimeout(r, 100));
  expect(dumps()).toBe('');
});
