import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pitrSpec } from '../../src/activities/pitr';
import type { PitrBackupResult, PitrDrillResult } from '../../src/domain/pitr';
import { PitrEngine } from '../../src/stores/postgres/pitr';
import { findProcesses } from '../../src/stores/postgres/pitr/run';
import { CRASH_HEARTBEAT_TIMEOUT, CrashWorker } from '../helpers/crash';
import { testEnv } from '../helpers/env';
import { createPitrCluster, type PitrCluster } from '../helpers/pitr-cluster';

/**
 * SIGKILL a real worker process while pgBackRest backs up and while the PITR
 * drill restores its scratch copy; a new worker finishes both, the backup is
 * resumed (one full backup, not two), and no scratch cluster is left running.
 */
jest.setTimeout(900_000);

const env = testEnv('pitrcrash');
let cluster: PitrCluster;
let dir: string;
let configFile: string;
const workers = new CrashWorker(() => configFile);

async function start(type: string, input: unknown) {
  const id = `${type}/${env.taskQueue}/${randomBytes(3).toString('hex')}`;
  return { id, handle: await workers.client.workflow.start(type, { taskQueue: env.taskQueue, workflowId: id, args: [input] }) };
}

beforeAll(async () => {
  // gzip keeps pgBackRest busy long enough to be killed in the middle.
  cluster = await createPitrCluster(env, { compress: 'gz' });
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-pitrcrash-'));
  configFile = join(dir, 'lifeboat.yaml');
  await cluster.writeConfigFile(configFile, { temporal: CRASH_HEARTBEAT_TIMEOUT });
  await cluster.query(`CREATE TABLE events AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body FROM generate_series(1, 2500000) AS g`);
  await workers.open(env.config.temporal);
});

afterAll(async () => {
  await workers.close();
  await cluster?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('killed while pgBackRest backs up, the backup resumes on a new worker: one full backup', async () => {
  const { id, handle } = await start('pitrBackupWorkflow', { target: cluster.target, type: 'full' });
  await workers.crashAt(id, 'pitrBackup', (hb) => (hb.percent ?? 0) > 0);
  const r = (await handle.result()) as PitrBackupResult;
  expect(r.type).toBe('full');
  const engine = new PitrEngine(pitrSpec(cluster.config, cluster.target));
  const ctx = { signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: () => undefined } };
  const info = await engine.info(ctx);
  expect(info.backups.map((b) => b.label)).toEqual([r.label]);
  expect(await findProcesses(`--annotation=lifeboat-run=${(await handle.describe()).runId}`)).toEqual([]);
});

test("killed while the PITR drill restores its scratch copy, a new worker finishes the drill and no scratch cluster is left", async () => {
  const { id, handle } = await start('pitrDrillWorkflow', { target: cluster.target });
  await workers.crashAt(id, 'pitrDrillRestore', (hb) => hb.stage === 'restore' || hb.stage === 'start scratch server' || hb.stage === 'recovery');
  const r = (await handle.result()) as PitrDrillResult;
  expect(r.ok).toBe(true);
  expect(r.markersBefore.found).toBe(137);
  expect(r.markersAfter.found).toBe(0);
  const scratch = new PitrEngine(pitrSpec(cluster.config, cluster.target)).paths.scratch;
  expect(await readdir(scratch)).toEqual([]);
  const left = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const argv = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (argv.includes(`${scratch}/`)) left.push(`${p}: ${argv.replace(/\0/g, ' ')}`);
  }
  expect(left).toEqual([]);
});
