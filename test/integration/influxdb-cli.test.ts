import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { stringify } from 'yaml';
import { artifactKey } from '../../src/domain/layout';
import { openRepository } from '../../src/repo';
import { loadIdentities, readArtifact, storeArtifact } from '../../src/repo/artifacts';
import { readManifest, writeManifest } from '../../src/repo/catalog';
import { lifeboat as run } from '../helpers/cli';
import { signingKeyOf, stackConfig, testEnv, trustOf, uniq } from '../helpers/env';
import { contents, databases, dropInflux, INFLUX_RPC, INFLUX_URL, influxPasswordFile, seedMetrics } from '../contract/influxdb-kind';

/**
 * The influxdb kind through the built CLI (npm run build), as an operator
 * runs it, with a worker inside the process: drills in both modes, ls,
 * restore under another name, verify (good and damaged), report, prune and
 * schedule apply. Its own task queue, repository prefix, database and
 * schedule ids.
 */
jest.setTimeout(600_000);

const env = testEnv('influxcli');
const db = uniq('clinflux');
const copy = uniq('clinflux_copy');
const idPrefix = uniq('lbtinflux');
let dir: string;
let spoolDir: string;
let configFile: string;
let before: Record<string, unknown>;

const lifeboat = (...args: string[]) => run(configFile, ...args);
async function json(...args: string[]) {
  const r = await lifeboat(...args, '--json');
  try {
    return { code: r.code, out: JSON.parse(r.stdout) };
  } catch {
    throw new Error(`lifeboat ${args.join(' ')} exited ${r.code} without JSON: ${r.stdout}${r.stderr}`);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-influxcli-'));
  spoolDir = await mkdtemp(join(tmpdir(), 'lifeboat-influxcli-spool-'));
  configFile = join(dir, 'lifeboat.yaml');
  const base = stackConfig();
  const target = { kind: 'influxdb', url: INFLUX_URL, user: 'lifeboat', password: { file: influxPasswordFile() }, rpcAddress: INFLUX_RPC, databases: [db], spoolDir };
  // Search attributes are another subject (and their registration on the shared server may differ): runs are left untagged.
  const doc = { temporal: { ...base.temporal, taskQueue: env.taskQueue }, repository: env.config.repository, encryption: base.encryption, signing: base.signing, targets: { 'metrics-influx': target }, schedules: { idPrefix } };
  await writeFile(configFile, stringify(doc));
  await seedMetrics(db, 8);
  before = await contents(db);
});

afterAll(async () => {
  await dropInflux(db);
  await dropInflux(copy);
  const connection = await Connection.connect({ address: env.config.temporal.address });
  const client = new Client({ connection, namespace: env.config.temporal.namespace });
  for (const id of [`${idPrefix}-backup-metrics-influx`, `${idPrefix}-drill`, `${idPrefix}-prune`]) {
    await client.schedule
      .getHandle(id)
      .delete()
      .catch((err: unknown) => {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      });
  }
  await connection.close();
  await rm(dir, { recursive: true, force: true });
  await rm(spoolDir, { recursive: true, force: true });
});

let scratchBackup = '';

test('drill (scratch): 113 markers come back in a copy, which is dropped; the database is as it was', async () => {
  // This file's databases (other test files may add or drop theirs meanwhile).
  const mine = async () => (await databases()).filter((d) => d.startsWith('clinflux')).sort();
  const all = await mine();
  const { code, out } = await json('drill', '--with-worker');
  expect(code).toBe(0);
  expect(out).toMatchObject({ ok: true, mode: 'scratch', stores: [{ target: 'metrics-influx', kind: 'influxdb', markers: { expected: 113, found: 113 } }] });
  scratchBackup = out.backupId;
  expect(await mine()).toEqual(all);
  expect(await databases()).not.toContain(`lifeboat_drill_${(out.nonce as string).replace(/-/g, '').slice(0, 8)}`);
  const now = await contents(db);
  expect(now).toEqual(before);
  expect(await readdir(spoolDir)).toEqual([]);
});

test('drill (in place): the database is dropped and restored with its markers and data', async () => {
  const { code, out } = await json('drill', '--mode', 'in-place', '--with-worker');
  expect(code).toBe(0);
  expect(out).toMatchObject({ ok: true, mode: 'in-place', stores: [{ kind: 'influxdb', markers: { expected: 113, found: 113 } }] });
  expect(await contents(db)).toEqual(before);
});

test('ls lists the backups; restore --as brings one back under another name', async () => {
  const { out } = await json('ls');
  const ours = out.backups.filter((b: { target: string }) => b.target === 'metrics-influx');
  expect(ours).toHaveLength(2);
  expect(ours[0]).toMatchObject({ kind: 'influxdb', encryption: 'age' });
  const r = await lifeboat('restore', scratchBackup, '--target', 'metrics-influx', '--only', db, '--as', copy, '--yes', '--with-worker');
  expect(r.code).toBe(0);
  expect(await contents(copy)).toEqual(before);
  expect(await contents(db)).toEqual(before);
});

test('verify: a good backup passes with what is in it; a damaged archive (sealed and hashed correctly) fails', async () => {
  const good = await json('verify', scratchBackup, '--with-worker');
  expect(good.out.ok).toBe(true);
  expect(good.out.result.targets[0].artifacts[0].detail).toMatch(new RegExp(`^influxd portable backup of '${db}': \\d+ shards`));

  // The same archive less one shard file, sealed and hashed as lifeboat would: only the archive check can tell.
  const repo = await openRepository(env.config);
  const m = await readManifest(repo, 'metrics-influx', scratchBackup, trustOf(env.config));
  const art = m.artifacts[0]!;
  const key = artifactKey('metrics-influx', scratchBackup, art.file);
  const plain = await readArtifact(repo, key, art, await loadIdentities(env.config.encryption));
  const ex = tar.extract();
  const pack = tar.pack();
  Readable.from(plain).pipe(ex);
  let dropped = '';
  for await (const e of ex) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    const data = Buffer.concat(chunks);
    if (!dropped && e.header.name.endsWith('.tar.gz')) dropped = e.header.name;
    else pack.entry({ name: e.header.name, size: data.length }, data);
  }
  pack.finalize();
  const stored = await storeArtifact(repo, key, Readable.from(pack), env.config.encryption, undefined, undefined, art.compression === 'zstd' ? { algorithm: 'zstd', level: 3 } : undefined);
  await writeManifest(repo, { ...m, artifacts: [{ ...art, bytes: stored.bytes, sha256: stored.sha256 }] }, await signingKeyOf(env.config));
  const bad = await json('verify', scratchBackup, '--with-worker');
  expect(bad.out.ok).toBe(false);
  expect(bad.out.result.targets[0].artifacts[0].error).toMatchObject({ type: 'ArtifactUnreadable', message: expect.stringContaining(`lacks shard file '${dropped}'`) });
});

test('report, prune --dry-run and schedule apply know the kind', async () => {
  const report = await json('report');
  expect(JSON.stringify(report.out)).toContain('metrics-influx');
  const prune = await json('prune', '--dry-run', '--with-worker');
  expect(prune.code).toBe(0);
  expect(JSON.stringify(prune.out)).toContain('metrics-influx');
  const applied = await json('schedule', 'apply');
  expect(applied.code).toBe(0);
  const backup = applied.out.schedules.find((s: { id: string }) => s.id === `${idPrefix}-backup-metrics-influx`);
  expect(backup).toMatchObject({ workflowType: 'backupWorkflow' });
  expect(JSON.stringify(backup)).toContain('influxdb');
});
