import { randomBytes } from 'node:crypto';
import type { BackupResult, DrillResult, RestoreResult } from '../../src/domain/plan';
import { makeBackupId } from '../../src/domain/names';
import { openRepository } from '../../src/repo';
import { readManifest, writeManifest } from '../../src/repo/catalog';
import { testEnv, uniq, withTaskQueue, trustOf, signingKeyOf } from '../helpers/env';
import { countRows, createDatabase, databaseExists, dropDatabase, pg, seedApp } from '../helpers/pg';
import { failureOf, startHarness, type Harness } from '../helpers/temporal';

/** The Postgres target with several databases and its roles, through the real workflows. */
const env = testEnv('wfpgmulti', { databases: 3 });
const config = withTaskQueue(env.config, env.taskQueue);
const [db0, db1, db2] = env.databases as [string, string, string];
const role = uniq('lbt_wf');
let h: Harness;

async function run<T>(type: string, input: unknown): Promise<T> {
  const handle = await h.client.workflow.start(type, { taskQueue: h.taskQueue, workflowId: `${type}/${env.taskQueue}/${randomBytes(3).toString('hex')}`, args: [input] });
  return handle.result() as Promise<T>;
}

const tableOwner = (db: string) => pg(config, db, async (c) => (await c.query("SELECT tableowner FROM pg_tables WHERE tablename = 'tenants'")).rows[0]?.tableowner as string | undefined);
const roleExists = () => pg(config, 'postgres', async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount === 1);

beforeAll(async () => {
  h = await startHarness(config);
  await pg(config, 'postgres', (c) => c.query(`CREATE ROLE ${c.escapeIdentifier(role)} LOGIN PASSWORD 'wf-pw'`));
  for (const [i, db] of env.databases.entries()) {
    await createDatabase(config, db);
    await pg(config, 'postgres', (c) => c.query(`ALTER DATABASE ${c.escapeIdentifier(db)} OWNER TO ${c.escapeIdentifier(role)}`));
    await seedApp(config, db, 100 * (i + 1));
    await pg(config, db, (c) => c.query(`ALTER TABLE tenants OWNER TO ${c.escapeIdentifier(role)}`));
  }
});

afterAll(async () => {
  await h?.stop();
  for (const db of [...env.databases, `${db1}_copy`]) await dropDatabase(config, db);
  await pg(config, 'postgres', (c) => c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(role)}`));
});

test('backup: the globals first, then one artifact per database, each with its facts in the manifest', async () => {
  const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
  await run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  const m = await readManifest(await openRepository(config), 'app-pg', backupId, trustOf(config));
  expect(m.artifacts.map((a) => [a.name, a.file, a.format])).toEqual([
    ['globals', 'globals.sql.zst.age', 'pg_dumpall-globals'],
    [db0, `${db0}.dump.zst.age`, 'pg_dump-custom'],
    [db1, `${db1}.dump.zst.age`, 'pg_dump-custom'],
    [db2, `${db2}.dump.zst.age`, 'pg_dump-custom'],
  ]);
  expect(m.artifacts[0]!.meta).toMatchObject({ roles: expect.arrayContaining([role]) });
  expect(m.artifacts[2]!.meta).toMatchObject({ owner: role, extensions: [{ name: 'plpgsql', version: '1.0' }] });
  expect(m.tools).toMatchObject({ pg_dump: expect.any(String), pg_dumpall: expect.any(String) });

  // One database under another name: the globals and the other databases are left out.
  await pg(config, db1, (c) => c.query('DELETE FROM tenants'));
  const one = await run<RestoreResult>('restoreWorkflow', { backupId, yes: true, only: { 'app-pg': [db1] }, into: { 'app-pg': { [db1]: `${db1}_copy` } } });
  expect(one.targets[0]!.restored).toEqual([{ name: db1, into: `${db1}_copy` }]);
  expect(await countRows(config, `${db1}_copy`)).toBe(200);
  expect(await countRows(config, db1)).toBe(0);

  // Everything, after losing the databases and the role: the role first, so the owners resolve.
  for (const db of [...env.databases, `${db1}_copy`]) await dropDatabase(config, db);
  await pg(config, 'postgres', (c) => c.query(`DROP ROLE ${c.escapeIdentifier(role)}`));
  const all = await run<RestoreResult>('restoreWorkflow', { backupId, yes: true });
  expect(all.targets[0]!.restored).toEqual([{ name: 'globals', into: 'globals' }, ...env.databases.map((d) => ({ name: d, into: d }))]);
  expect(await roleExists()).toBe(true);
  expect(await Promise.all(env.databases.map((d) => countRows(config, d)))).toEqual([100, 200, 300]);
  expect(await Promise.all(env.databases.map(tableOwner))).toEqual([role, role, role]);

  // Globals cannot be renamed.
  const f = await failureOf(run('restoreWorkflow', { backupId, yes: true, only: { 'app-pg': ['globals'] }, into: { 'app-pg': { globals: 'roles_copy' } } }));
  expect(f).toMatchObject({ type: 'InvalidName', message: expect.stringContaining("cannot be restored under another name ('roles_copy')") });
});

test('drills restore only the drill database, never the globals, in both modes', async () => {
  for (const mode of ['in-place', 'scratch'] as const) {
    const r = await run<DrillResult>('drillWorkflow', { mode });
    expect(r).toMatchObject({ ok: true, mode, stores: [{ target: 'app-pg', markers: { expected: 137, found: 137, missing: [], unexpected: 0 } }] });
    const m = await readManifest(await openRepository(config), 'app-pg', r.backupId, trustOf(config));
    expect(m.artifacts[0]!.name).toBe('globals');
    if (mode === 'scratch') expect(await databaseExists(config, `lifeboat_drill_${r.nonce.replace(/-/g, '').slice(0, 8)}`)).toBe(false);
  }
  expect(await countRows(config, db0)).toBe(100);
  expect(await tableOwner(db0)).toBe(role);
});

test('a restore whose database needs an extension the server lacks fails in the preflight, before anything is stopped or dropped', async () => {
  const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
  await run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  const repo = await openRepository(config);
  const m = await readManifest(repo, 'app-pg', backupId, trustOf(config));
  // As if the database had used PostGIS: the manifest's meta is what the restore checks.
  const needs = (a: (typeof m.artifacts)[number]) => (a.name === db2 ? { ...a, meta: { ...a.meta, extensions: [{ name: 'postgis', version: '3.4.2' }] } } : a);
  await writeManifest(repo, { ...m, artifacts: m.artifacts.map(needs) }, await signingKeyOf(config));
  await pg(config, db1, (c) => c.query("INSERT INTO tenants (name) VALUES ('after-the-backup')"));
  const rows = await countRows(config, db1);
  const f = await failureOf(run('restoreWorkflow', { backupId, yes: true }));
  expect(f.type).toBe('ExtensionMissing');
  expect(f.message).toContain(`database '${db2}' needs extension 'postgis' (3.4.2 at backup), which is not available on the server`);
  expect(f.message).toContain('postgresql-15-postgis-3');
  expect(f.message).toContain('The databases were left as they were');
  expect(await countRows(config, db1)).toBe(rows);
});
