import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config, S3RepositoryConfig } from '../../src/config';
import { makeBackupId } from '../../src/domain/names';
import { openRepository } from '../../src/repo';
import { s3Client } from '../../src/repo/s3';
import { sweepSpools } from '../../src/stores/postgres/spool';
import { testEnv, withTaskQueue } from '../helpers/env';
import { createDatabase, dropDatabase, holdTableLock, pg } from '../helpers/pg';
import { activityAttempts, failureOf, startHarness, type Harness } from '../helpers/temporal';

/**
 * No leaks on any path: a failed or cancelled attempt leaves no pg_dump
 * running and no database session behind, a cancelled upload no open
 * multipart upload, a full repository fails at once naming itself, and a
 * decrypted spool never outlives its restore.
 */
jest.setTimeout(300_000);
const env = testEnv('leaks');
const db = env.databases[0]!;
const config = withTaskQueue(env.config, env.taskQueue);
let dir: string;

const newId = () => makeBackupId(new Date(), randomBytes(2).toString('hex'));
/** pg_dump processes of this test's database (its name is in their argv). */
const dumps = () => spawnSync('pgrep', ['-f', `pg_dump.*${db}`], { encoding: 'utf8' }).stdout.trim();
const sessions = () => pg(config, 'postgres', async (c) => Number((await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'lifeboat pg_dump%'", [db])).rows[0].n));

async function pendingAttempt(h: Harness, workflowId: string, atLeast: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const d = await h.client.workflow.getHandle(workflowId).describe();
    if ((d.raw.pendingActivities ?? []).some((a) => a.activityType?.name === 'backupItem' && (a.attempt ?? 0) >= atLeast)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`backupItem of ${workflowId} never reached attempt ${atLeast}`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-leaks-'));
  await createDatabase(config, db);
  // Incompressible rows: a dump far larger than a pipe and an upload part, so pg_dump blocks when nobody reads.
  await pg(config, db, (c) => c.query("CREATE TABLE noise AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 600000) g"));
});

afterAll(async () => {
  await dropDatabase(config, db);
  await rm(dir, { recursive: true, force: true });
});

test('an attempt whose upload fails (repository refusing connections) leaves no pg_dump and no session behind when the next one starts', async () => {
  const dead: Config = { ...config, repository: { ...(config.repository as S3RepositoryConfig), endpoint: 'http://127.0.0.1:9' } };
  const h = await startHarness({ ...dead, targets: new Map([['app-pg', { ...config.targets.get('app-pg')!, settings: { ...config.targets.get('app-pg')!.settings, globals: false } }]]) });
  try {
    const { handle, result } = await h.start('backupWorkflow', { targets: ['app-pg'], backupId: newId() });
    result.catch(() => undefined); // terminated below
    await pendingAttempt(h, handle.workflowId, 2); // the first attempt failed; the retry waits its backoff
    expect(dumps()).toBe('');
    expect(await sessions()).toBe(0);
    await handle.terminate('test done');
  } finally {
    await h.stop();
  }
});

test('a cancelled backup stops pg_dump, frees its session and leaves no open multipart upload', async () => {
  const h = await startHarness(config);
  try {
    const { handle, result } = await h.start('backupWorkflow', { targets: ['app-pg'], backupId: newId() });
    for (let i = 0; i < 600; i++) {
      const d = await handle.describe();
      if ((d.raw.pendingActivities ?? []).some((a) => a.activityType?.name === 'backupItem' && a.heartbeatDetails?.payloads?.length) && dumps()) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(dumps()).not.toBe('');
    await handle.cancel();
    // A cancelled run ends within seconds; if it does not, say what it still waits for instead of hanging.
    const ended = await Promise.race([failureOf(result).then(() => true, () => true), new Promise<false>((r) => setTimeout(() => r(false), 60_000))]);
    if (!ended) throw new Error(`the cancelled backup is still running after 60 s: ${JSON.stringify((await handle.describe()).raw.pendingActivities ?? [])} ${JSON.stringify((await handle.describe()).raw.pendingChildren ?? [])}`);
    // The run ends only once its activity has stopped: pg_dump is gone by then, not some time later.
    expect(dumps()).toBe('');
    // The server ends the session when it sees the client gone: a moment after.
    for (let i = 0; i < 50 && (await sessions()); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await sessions()).toBe(0);
    const repo = config.repository as S3RepositoryConfig;
    const uploads = await (await s3Client(repo)).send(new ListMultipartUploadsCommand({ Bucket: repo.bucket, Prefix: `${repo.prefix}/` }));
    expect(uploads.Uploads ?? []).toEqual([]);
  } finally {
    await h.stop();
  }
});

test("a target that fails does not end the run while another target's dump runs: that backup is finished and kept", async () => {
  // app-pg's dump waits on a table lock held here, so it is surely running when the other target fails.
  const lock = await holdTableLock(config, db, 'noise');
  // A second target served by a worker of its own, started once the dump runs: its database is missing (permanent).
  const queueB = `${env.taskQueue}-b`;
  const pgTarget = config.targets.get('app-pg')!;
  const two: Config = { ...config, targets: new Map([['app-pg', pgTarget], ['app-pg-b', { ...pgTarget, taskQueue: queueB, settings: { ...pgTarget.settings, databases: [`${db}_missing`] } }]]) };
  const h = await startHarness(two);
  let b: Harness | undefined;
  try {
    const backupId = newId();
    const { handle, result } = await h.start('backupWorkflow', { targets: ['app-pg', 'app-pg-b'], backupId });
    for (let i = 0; i < 600 && !dumps(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(dumps()).not.toBe('');
    b = await startHarness(withTaskQueue(two, queueB));
    const failedActivity = async () => ((await handle.fetchHistory()).events ?? []).some((e) => e.activityTaskFailedEventAttributes);
    for (let i = 0; i < 300 && !(await failedActivity()); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await failedActivity()).toBe(true);
    // app-pg-b has failed; the run still waits for app-pg's dump instead of ending beside it.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await handle.describe()).status.name).toBe('RUNNING');
    expect(dumps()).not.toBe('');
    await lock.release();
    const f = await failureOf(result);
    expect(f.type).toBe('DatabaseNotFound');
    expect(f.message).toContain(`${db}_missing`);
    expect(dumps()).toBe('');
    // app-pg's backup was finished: its manifest is there.
    expect(await (await openRepository(config)).exists(`app-pg/${backupId}/manifest.json`)).toBe(true);
  } finally {
    await lock.release();
    await b?.stop();
    await h.stop();
  }
});

test('a full repository fails the backup at once, naming the repository and how far it got', async () => {
  const mnt = join(dir, 'small-disk');
  await mkdir(mnt);
  // A 2 MiB filesystem of its own: a repository that fills up. Needs root (CI runs as root); says so otherwise.
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]).status === 0;
  if (!mounted) throw new Error(`cannot mount a small tmpfs at ${mnt} (this test needs root)`);
  const h = await startHarness({ ...config, repository: { kind: 'local', path: mnt } });
  try {
    const { handle, result } = await h.start('backupWorkflow', { targets: ['app-pg'], backupId: newId() });
    const f = await failureOf(result);
    expect(f.type).toBe('RepositoryFull');
    expect(f.message).toMatch(new RegExp(`^the repository is full: writing file://${mnt}/app-pg/\\S+ failed after \\d+\\.\\d MiB \\(ENOSPC on ${mnt}\\); it needs at least that much free space`));
    expect(Math.max(...(await activityAttempts(handle)))).toBe(1); // permanent: not retried for minutes
    expect(dumps()).toBe('');
  } finally {
    await h.stop();
    execFileSync('umount', [mnt]);
  }
});

test('the spool of a restore whose worker died is swept at the next worker start; live ones are left alone', async () => {
  const spoolDir = join(dir, 'spool');
  await mkdir(spoolDir);
  const deadPid = (() => {
    const p = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    return Number(p.stdout.trim());
  })();
  const stale = join(spoolDir, 'lifeboat-spool-app-pg-app');
  await mkdir(stale, { mode: 0o700 });
  await writeFile(join(stale, 'owner.json'), JSON.stringify({ pid: deadPid, host: hostname() }));
  await writeFile(join(stale, 'dump'), 'decrypted rows', { mode: 0o600 });
  const live = join(spoolDir, 'lifeboat-spool-app-pg-other');
  await mkdir(live, { mode: 0o700 });
  await writeFile(join(live, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname() }));
  const removed = await sweepSpools(spoolDir);
  expect(removed).toEqual([`removed the spool ${stale} of a restore whose worker died`]);
  expect(existsSync(stale)).toBe(false);
  expect(await readdir(spoolDir)).toEqual(['lifeboat-spool-app-pg-other']);
});
