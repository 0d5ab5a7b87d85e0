import type { Config } from '../../src/config';
import type { BackupResult, DrillResult, RestoreResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { readManifest } from '../../src/repo/catalog';
import { quoteIdent } from '../../src/stores/clickhouse/sql';
import { ch, clickhouseTarget, dropDb, fingerprint, seedEvents } from '../contract/clickhouse-kind';
import { testEnv, withTaskQueue, trustOf } from '../helpers/env';
import { startHarness, type Harness } from '../helpers/temporal';

/** The clickhouse kind through the real workflows: a real worker, Temporal, MinIO and age. */
const env = testEnv('wfch');
const db = env.databases[0]!.replace(/_db0$/, '_events');
const config: Config = withTaskQueue({ ...env.config, targets: new Map([['events-ch', clickhouseTarget('events-ch', { databases: [db] })]]) }, env.taskQueue);
let h: Harness;

beforeAll(async () => {
  h = await startHarness(config);
  await seedEvents(db, 10_000);
});
afterAll(async () => {
  await h?.stop();
  await dropDb(db);
  await dropDb(`${db}_copy`);
});

test('drill in scratch mode: 251 markers come back in the scratch copy, which is dropped afterwards', async () => {
  const r = await h.run<DrillResult>('drillWorkflow', { mode: 'scratch' });
  expect(r.ok).toBe(true);
  expect(r.stores[0]).toMatchObject({ target: 'events-ch', kind: 'clickhouse', markers: { expected: 251, found: 251, missing: [], unexpected: 0 } });
  const scratch = `lifeboat_drill_${r.nonce.replace(/-/g, '').slice(0, 8)}`;
  expect((await ch(`SELECT count() FROM system.databases WHERE name = '${scratch}'`)).trim()).toBe('0');
});

test('drill in place: drop the database, restore it, markers and rows back', async () => {
  const before = await fingerprint(db, 'events');
  const r = await h.run<DrillResult>('drillWorkflow', { mode: 'in-place' });
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers).toMatchObject({ expected: 251, found: 251, unexpected: 0 });
  expect(await fingerprint(db, 'events')).toEqual(before);
  expect((await ch(`SELECT sum(n) FROM ${quoteIdent(db)}.kind_counts`)).trim()).toBe('10000');
});

test('backup, then restore the whole database under another name; the manifest lists every table', async () => {
  const b = await h.run<BackupResult>('backupWorkflow', { targets: ['events-ch'] });
  const m = await readManifest(await openRepository(config), 'events-ch', b.backupId, trustOf(config));
  expect(m.kind).toBe('clickhouse');
  expect(m.server.version).toMatch(/^18\.16/);
  expect(m.artifacts.map((a) => a.item)).toEqual([`schema:${db}`, `table:${db}.events`, `table:${db}.kind_counts`, `table:${db}.lifeboat_drill_markers`, `table:${db}.schema_migrations`, `views:${db}`, `table:${db}..inner.daily`]);
  expect(m.artifacts.every((a) => a.encryption === 'age' && a.name === db)).toBe(true);
  const r = await h.run<RestoreResult>('restoreWorkflow', { backupId: b.backupId, targets: ['events-ch'], into: { 'events-ch': { [db]: `${db}_copy` } }, yes: true });
  expect(r.targets[0]!.restored.every((x) => x.into === `${db}_copy`)).toBe(true);
  for (const t of ['events', 'schema_migrations', 'kind_counts', '.inner.daily']) expect(await fingerprint(`${db}_copy`, t)).toEqual(await fingerprint(db, t));
});
