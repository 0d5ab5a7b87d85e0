import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProgressState } from '../../src/domain/plan';
import { writeConfigFile } from '../helpers/config-file';
import { testEnv, withTaskQueue } from '../helpers/env';
import { createDatabase, dropDatabase, pg } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

/** Bytes, rate and ETA move while one long item streams: in the query, the Web UI's details and the CLI's JSON lines. */
jest.setTimeout(240_000);
process.env.LIFEBOAT_PROGRESS_INTERVAL_MS = '300';
const env = testEnv('progress');
const db = env.databases[0]!;
const config = withTaskQueue(env.config, env.taskQueue);
let h: Harness;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-progress-'));
  await createDatabase(config, db);
  await pg(config, db, (c) => c.query("CREATE TABLE noise AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 900000) g"));
  h = await startHarness({ ...config, targets: new Map([['app-pg', { ...config.targets.get('app-pg')!, settings: { ...config.targets.get('app-pg')!.settings, globals: false } }]]) });
});

afterAll(async () => {
  await h?.stop();
  await dropDatabase(config, db);
  await rm(dir, { recursive: true, force: true });
});

test('the progress query and the current details show bytes growing, a total, a rate and an ETA during one item', async () => {
  const { handle, result } = await h.start('backupWorkflow', { targets: ['app-pg'] });
  const seen: ProgressState[] = [];
  let details = '';
  let done = false;
  void result.finally(() => (done = true));
  while (!done) {
    const p = await handle.query<ProgressState>('progress').catch(() => undefined);
    if (p?.stage === 'backup' && p.bytesDone) seen.push(p);
    const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata').catch(() => undefined);
    if (meta?.currentDetails?.startsWith('**backup**') && meta.currentDetails.includes('ETA')) details = meta.currentDetails;
    await new Promise((r) => setTimeout(r, 100));
  }
  await result;
  const distinct = [...new Set(seen.map((p) => p.bytesDone))];
  expect(distinct.length).toBeGreaterThanOrEqual(2); // moved within the one item
  expect(seen.every((p) => p.bytesTotal! > 0)).toBe(true); // the database's size, known before the dump
  expect(seen.some((p) => p.bytesPerSecond! > 0 && p.etaSeconds !== undefined)).toBe(true);
  expect(details).toMatch(/^\*\*backup\*\*: app-pg\n\n[\d.]+ \w?i?B of [\d.]+ \w?i?B \(\d+%\) · [\d.]+ \w?i?B\/s · ETA \d+s$/);
});

test('lifeboat backup --json writes JSON lines with bytes, rate and ETA on stderr while it waits', async () => {
  const file = await writeConfigFile(dir, env, { targets: { 'app-pg': { ...(config.targets.get('app-pg')!.settings as object), kind: 'postgres', databases: [db], globals: false } } });
  const out = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
    execFile(process.execPath, [join(__dirname, '../../bin/lifeboat'), '--config', file, 'backup', '--json', '--with-worker'], { env: { ...process.env, LIFEBOAT_PROGRESS_INTERVAL_MS: '200', LIFEBOAT_WATCH_INTERVAL_MS: '100' } }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr })) : resolve({ stdout, stderr }),
    ),
  );
  const lines = out.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { progress: ProgressState & { bytesPerSecond?: number; etaSeconds?: number } }).progress);
  const bytes = [...new Set(lines.filter((p) => p.stage === 'backup' && p.bytesDone).map((p) => p.bytesDone))];
  expect(bytes.length).toBeGreaterThanOrEqual(2);
  expect(lines.some((p) => p.bytesPerSecond! > 0 && p.etaSeconds !== undefined)).toBe(true);
  expect(JSON.parse(out.stdout)).toMatchObject({ ok: true });
});
