import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { DrillResult } from '../../src/domain/plan';
import { lifeboat as run } from '../helpers/cli';
import { stackConfig, testEnv, withTaskQueue } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

/**
 * `lifeboat report` over what real drills left in the repository: two drills
 * through a real worker, then the built CLI (npm run build) reads the drill
 * records and manifests from this file's own repository prefix.
 */
const env = testEnv('report');
const config = withTaskQueue(env.config, env.taskQueue);
const db = env.databases[0]!;
let h: Harness;
let dir: string;
let configFile: string;

const lifeboat = (...args: string[]) => run(configFile, ...args);

async function drill(): Promise<DrillResult> {
  return h.run<DrillResult>('drillWorkflow', { mode: 'scratch' });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-report-'));
  configFile = join(dir, 'lifeboat.yaml');
  const base = stackConfig();
  await writeFile(
    configFile,
    stringify({
      temporal: { ...base.temporal, taskQueue: env.taskQueue },
      repository: env.config.repository,
      encryption: base.encryption,
      signing: base.signing,
      targets: { 'app-pg': { ...base.targets.get('app-pg')!.settings, databases: [db] } },
      schedules: { idPrefix: env.config.schedules!.idPrefix },
    }),
  );
  await createDatabase(config, db);
  await seedApp(config, db, 50);
  h = await startHarness(config);
});

afterAll(async () => {
  await h?.stop();
  await dropDatabase(config, db);
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('before any backup or drill, the report says never', async () => {
  const r = await lifeboat('report', '--json');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({
    ok: true,
    last: 10,
    drillsConsidered: 0,
    targets: [{ target: 'app-pg', kind: 'postgres', lastBackup: null, rpoSeconds: null, lastDrill: null, restoreSeconds: { latest: null, worst: null } }],
  });
});

test('after two drills: RPO from the newest backup, restore and backup seconds latest and worst of the two', async () => {
  const first = await drill();
  const second = await drill();
  const s1 = first.stores[0]!;
  const s2 = second.stores[0]!;

  const r = await lifeboat('report', '--json');
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out).toMatchObject({ ok: true, last: 10, drillsConsidered: 2, warnings: [] });
  const t = out.targets[0];
  expect(t).toMatchObject({
    target: 'app-pg',
    kind: 'postgres',
    // The drill's own backup is the newest complete backup.
    lastBackup: { backupId: second.backupId },
    drills: 2,
    lastDrill: { ok: true, mode: 'scratch', failures: [] },
    restoreSeconds: { latest: s2.restoreSeconds, worst: Math.max(s1.restoreSeconds, s2.restoreSeconds) },
    backupSeconds: { latest: s2.backupSeconds, worst: Math.max(s1.backupSeconds, s2.backupSeconds) },
  });
  expect(t.lastDrill.workflowId).toMatch(new RegExp(`^drillWorkflow/${env.taskQueue}/`));
  expect(t.rpoSeconds).toBeGreaterThanOrEqual(0);
  expect(t.rpoSeconds).toBeLessThan(600);

  const one = JSON.parse((await lifeboat('report', '--last', '1', '--json')).stdout);
  expect(one.targets[0]).toMatchObject({ drills: 1, restoreSeconds: { latest: s2.restoreSeconds, worst: s2.restoreSeconds } });

  const human = await lifeboat('report');
  expect(human.stdout).toMatch(/^TARGET\s+KIND\s+LAST BACKUP\s+RPO\s+LAST DRILL\s+RESTORE s latest\/worst\s+BACKUP s latest\/worst\n/);
  expect(human.stdout).toMatch(new RegExp(`^app-pg\\s+postgres\\s+${second.backupId}\\s+\\S+\\s+ok \\S+ ago\\s+${s2.restoreSeconds.toFixed(1)} / `, 'm'));
});

test('--last must be a positive whole number', async () => {
  const r = await lifeboat('report', '--last', '0', '--json');
  expect(r.code).toBe(2);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, type: 'ConfigError', error: expect.stringContaining('--last must be a whole number') });
});
