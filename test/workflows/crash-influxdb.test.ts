import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { DrillResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { deleteBackup } from '../../src/repo/catalog';
import { CRASH_HEARTBEAT_TIMEOUT, CrashWorker } from '../helpers/crash';
import { stackConfig, testEnv, uniq } from '../helpers/env';
import { dropInflux, influx, INFLUX_RPC, INFLUX_URL, influxHttp, influxPasswordFile } from '../contract/influxdb-kind';

/**
 * Kill -9 a real worker process in the middle of `influxd backup` and while
 * `influxd restore` loads the database the restore has dropped,
 * start a new one, and show the in-place drill still completes with every
 * marker and every point, a clean repository, no spool folder left and no
 * influxd left running.
 */
jest.setTimeout(900_000);

const env = testEnv('crashinflux');
const db = uniq('crashinflux');
/** Points with an incompressible payload (about 80 MB of shards): influxd backup and restore each run for a while. */
const POINTS = 600_000;
let dir: string;
let spoolDir: string;
let configFile: string;
const workers = new CrashWorker(() => configFile);
/** Set when the drill's workflow has ended: a watcher still waiting then has missed its moment. */
let drillDone = false;

/**
 * Waits until the worker runs `influxd <verb>` on this file's spool folder
 * (and `ready` holds), then kills the worker with SIGKILL and starts a new
 * one; returns what the spool folder held right after the kill. Watching the
 * processes, not heartbeats: a restore of this size loads in about a second,
 * less than the worker's 3-second heartbeat throttle. The target's influxd is
 * a wrapper that stays 3 s after a restore has loaded (before the worker sees
 * it end), so a watcher slowed by a busy machine cannot miss the moment
 * between the drop and the end of the restore.
 */
async function crashDuring(verb: 'backup' | 'restore', ready: () => Promise<boolean> = async () => true): Promise<string[]> {
  for (let i = 0; i < 30_000; i++) {
    if (drillDone) throw new Error(`the drill finished before the watcher saw influxd ${verb} run: it ran for less than one scan of /proc`);
    const running = (await influxdChildren()).filter((c) => c.includes(`influxd ${verb} `));
    if (running.length && (await ready())) {
      await workers.kill();
      process.stderr.write(`killed the worker while it ran ${running.join('; ')}\n`);
      const left = await readdir(spoolDir);
      await workers.start();
      return left;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`the worker never ran influxd ${verb}`);
}

async function spooled(): Promise<number> {
  let n = 0;
  for (const d of await readdir(spoolDir)) for (const f of await readdir(join(spoolDir, d)).catch(() => [])) n += (await stat(join(spoolDir, d, f)).catch(() => ({ size: 0 }))).size;
  return n;
}

/** Processes whose command line names this file's spool folder (influxd backup/restore children). */
async function influxdChildren(): Promise<string[]> {
  // All at once: one scan must take far less than the second an influxd restore of this size runs.
  const pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
  const cmds = await Promise.all(pids.map(async (pid) => [pid, await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')] as const));
  return cmds.filter(([, cmd]) => cmd.includes(spoolDir) && /(^|\/|\0)influxd\0/.test(cmd)).map(([pid, cmd]) => `${pid}: ${cmd.replace(/\0/g, ' ')}`);
}

async function points(): Promise<number> {
  return Number((await influx('SELECT count("n") FROM "load"', db))[0]?.count ?? 0);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-crashinflux-'));
  spoolDir = await mkdtemp(join(tmpdir(), 'lifeboat-crashinflux-spool-'));
  configFile = join(dir, 'lifeboat.yaml');
  const base = stackConfig();
  // influxd itself, but a restore's process stays 3 s after influxd has loaded the data (see crashDuring).
  const influxd = join(dir, 'bin', 'influxd');
  await mkdir(join(dir, 'bin'));
  await writeFile(influxd, '#!/bin/sh\nif [ "$1" = restore ]; then influxd "$@"; s=$?; sleep 3; exit $s; fi\nexec influxd "$@"\n', { mode: 0o755 });
  const target = { kind: 'influxdb', url: INFLUX_URL, user: 'lifeboat', password: { file: influxPasswordFile() }, rpcAddress: INFLUX_RPC, databases: [db], spoolDir, influxd };
  await writeFile(configFile, stringify({ temporal: { ...base.temporal, taskQueue: env.taskQueue, ...CRASH_HEARTBEAT_TIMEOUT }, repository: env.config.repository, encryption: base.encryption, signing: base.signing, targets: { 'metrics-influx': target }, schedules: { idPrefix: env.config.schedules!.idPrefix } }));
  await influx(`CREATE DATABASE "${db}" WITH SHARD DURATION 1d`);
  const now = Date.now();
  for (let at = 0; at < POINTS; at += 10_000) {
    const lines = Array.from({ length: 10_000 }, (_, i) => `load,src=s${(at + i) % 16} n=${at + i}i,payload="${randomBytes(96).toString('base64')}" ${now - (at + i) * 1000}`);
    await influxHttp().write(db, `${lines.join('\n')}\n`, 'seeding', new AbortController().signal);
  }
  await workers.open(env.config.temporal);
});

afterAll(async () => {
  await workers.close();
  await dropInflux(db);
  await rm(dir, { recursive: true, force: true });
  await rm(spoolDir, { recursive: true, force: true });
});

test('killed mid-backup and mid-restore, the in-place drill completes with every marker and point; nothing is left behind', async () => {
  expect(await points()).toBe(POINTS);
  const id = `drill/${env.taskQueue}/${randomBytes(3).toString('hex')}`;
  const handle = await workers.client.workflow.start('drillWorkflow', { taskQueue: env.taskQueue, workflowId: id, args: [{ mode: 'in-place' }] });
  const result = handle.result().finally(() => (drillDone = true));
  result.catch(() => undefined); // judged below

  // While influxd backup writes its files: the dead attempt's spool folder stays behind, for now.
  const afterBackupKill = await crashDuring('backup', async () => (await spooled()) > 1_000_000);
  expect(afterBackupKill).toHaveLength(1);
  // While influxd restore loads the database, which the restore dropped: the retry must start from nothing.
  const afterRestoreKill = await crashDuring('restore');
  expect(afterRestoreKill).toHaveLength(1);
  expect(afterRestoreKill).not.toEqual(afterBackupKill); // the backup's retry removed the first one

  const r = (await result) as DrillResult;
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers).toMatchObject({ expected: 113, found: 113, unexpected: 0 });
  expect(await points()).toBe(POINTS);

  // The repository holds the one artifact, its two sidecars and the manifest; no spool folder and no influxd is left.
  const repo = await openRepository(env.config);
  const files = (await repo.list(`metrics-influx/${r.backupId}`)).map((e) => e.name).sort();
  expect(files).toEqual([`${db}.influxdb.tar.zst.age`, `${db}.influxdb.tar.zst.age.blocks`, `${db}.influxdb.tar.zst.age.sha256`, 'manifest.json', 'manifest.json.sig']);
  await deleteBackup(repo, 'metrics-influx', r.backupId); // 200 MB the next run does not need
  expect(await readdir(spoolDir)).toEqual([]);
  for (let i = 0; i < 600 && (await influxdChildren()).length; i++) await new Promise((res) => setTimeout(res, 100));
  expect(await influxdChildren()).toEqual([]);
});
