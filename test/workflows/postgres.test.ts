import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import type { S3RepositoryConfig } from '../../src/config';
import type { BackupResult, DrillResult, RestoreResult } from '../../src/domain/plan';
import { makeBackupId } from '../../src/domain/names';
import { openRepository } from '../../src/repo';
import { listBackups, readManifest } from '../../src/repo/catalog';
import { s3Client } from '../../src/repo/s3';
import { testEnv, withTaskQueue, trustOf } from '../helpers/env';
import { countRows, createDatabase, databaseExists, dropDatabase, pg, seedApp } from '../helpers/pg';
import { failureOf, scheduledActivities, startHarness, type Harness } from '../helpers/temporal';

const env = testEnv('wfpg');
const config = withTaskQueue(env.config, env.taskQueue);
const db = env.databases[0]!;
let h: Harness;

const newId = () => makeBackupId(new Date(), randomBytes(2).toString('hex'));

const start = <T>(type: string, input: unknown) => h.start<T>(type, input);
const run = <T>(type: string, input: unknown) => h.run<T>(type, input);

async function tamper(backupId: string, file: string, at: (length: number) => number): Promise<string> {
  const repoCfg = config.repository as S3RepositoryConfig;
  const s3 = await s3Client(repoCfg);
  const key = `${repoCfg.prefix}/app-pg/${backupId}/${file}`;
  const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: repoCfg.bucket, Key: key }))).Body!.transformToByteArray());
  const i = at(body.length);
  body.writeUInt8(body.readUInt8(i) ^ 0x01, i);
  await s3.send(new PutObjectCommand({ Bucket: repoCfg.bucket, Key: key, Body: body }));
  return `s3://${repoCfg.bucket}/${key}`;
}

beforeAll(async () => {
  h = await startHarness(config);
  await createDatabase(config, db);
  await seedApp(config, db, 500);
});

afterAll(async () => {
  await h?.stop();
  await dropDatabase(config, db);
});

test('drill in place: 137 markers come back with their nonce, and the application rows with them', async () => {
  const r = await run<DrillResult>('drillWorkflow', { mode: 'in-place' });
  expect(r.ok).toBe(true);
  expect(r.stores).toHaveLength(1);
  const s = r.stores[0]!;
  expect(s).toMatchObject({ target: 'app-pg', kind: 'postgres', markers: { expected: 137, found: 137, missing: [], unexpected: 0 } });
  expect(s.backupSeconds).toBeGreaterThan(0);
  expect(s.restoreSeconds).toBeGreaterThan(0);
  expect(s.artifactBytes).toBeGreaterThan(0);
  expect(await countRows(config, db)).toBe(500);
  const markers = await pg(config, db, (c) => c.query('SELECT count(*)::int AS n FROM lifeboat_drill_markers WHERE nonce = $1', [r.nonce]));
  expect(markers.rows[0].n).toBe(137);
});

test('drill in scratch mode restores under a temporary name, drops it, and leaves the original alone', async () => {
  await pg(config, db, (c) => c.query("INSERT INTO tenants (name) VALUES ('written-during-drill')"));
  const before = await countRows(config, db);
  const r = await run<DrillResult>('drillWorkflow', { mode: 'scratch' });
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers.found).toBe(137);
  expect(await countRows(config, db)).toBe(before);
  expect(await databaseExists(config, `lifeboat_drill_${r.nonce.replace(/-/g, '').slice(0, 8)}`)).toBe(false);
});

test('backup writes artifacts with sidecars and the manifest; restore puts lost rows back', async () => {
  const backupId = newId();
  const b = await run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  expect(b.backupId).toBe(backupId);
  const repo = await openRepository(config);
  const m = await readManifest(repo, 'app-pg', backupId, trustOf(config));
  expect(m).toMatchObject({ kind: 'postgres', target: 'app-pg', encryption: { format: 'age' } });
  expect(m.server.version).toMatch(/^15\./);
  const art = m.artifacts.find((a) => a.name === db)!;
  expect(art).toMatchObject({ file: `${db}.dump.zst.age`, name: db, encryption: 'age' });
  expect(await repo.getText(`app-pg/${backupId}/${art.file}.sha256`)).toBe(`${art.sha256}  ${art.file}\n`);
  expect((await listBackups(repo, ['app-pg'])).map((x) => x.backupId)).toContain(backupId);

  const rows = await countRows(config, db);
  await pg(config, db, (c) => c.query('DELETE FROM tenants'));
  const r = await run<RestoreResult>('restoreWorkflow', { backupId, yes: true });
  expect(r.targets[0]!.restored).toContainEqual({ name: db, into: db });
  expect(await countRows(config, db)).toBe(rows);
});

test('a tampered artifact fails the restore with the checksum message, and the database keeps its rows', async () => {
  const backupId = newId();
  await run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  const url = await tamper(backupId, `${db}.dump.zst.age`, (n) => n - 100);

  await pg(config, db, (c) => c.query("INSERT INTO tenants (name) VALUES ('after-the-backup')"));
  const rows = await countRows(config, db);
  const m = await readManifest(await openRepository(config), 'app-pg', backupId, trustOf(config));
  const f = await failureOf(run('restoreWorkflow', { backupId, yes: true }));
  expect(f.type).toBe('ChecksumMismatch');
  expect(f.message).toContain(`artifact '${url}' failed its checksum (expected ${m.artifacts.find((a) => a.name === db)!.sha256}, got `);
  expect(f.message).toContain('it was not restored');
  expect(await countRows(config, db)).toBe(rows);
});

test('a restore into a new name streams each block authenticated, with no verify pass first; into a name that exists it verifies, then replaces it', async () => {
  const backupId = newId();
  await run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  const m = await readManifest(await openRepository(config), 'app-pg', backupId, trustOf(config));
  const art = m.artifacts.find((a) => a.name === db)!;
  expect(art.blocks).toEqual({ size: 4 << 20, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
  const copy = `${db}_new_${randomBytes(2).toString('hex')}`;
  try {
    const rows = await countRows(config, db);
    const input = { backupId, yes: true, only: { 'app-pg': [db] }, into: { 'app-pg': { [db]: copy } } };
    const first = await start<RestoreResult>('restoreWorkflow', input);
    await first.result;
    expect(await countRows(config, copy)).toBe(rows);
    const acts = await scheduledActivities(first.handle);
    expect(acts.map((a) => a.type)).not.toContain('verifyStoredArtifact');
    expect(acts.map((a) => a.type)).not.toContain('restoreItem');
    expect(acts.find((a) => a.type === 'restoreNewItem')!.input).toMatchObject({ into: copy });

    // The copy exists now (as after a failed attempt, or made by someone): it is verified whole before it is dropped.
    await pg(config, copy, (c) => c.query("INSERT INTO tenants (name) VALUES ('only-in-the-copy')"));
    await run<RestoreResult>('restoreWorkflow', input);
    expect(await countRows(config, copy)).toBe(rows);

    // With anything restored in place (here the roles), every artifact is verified before the first drop, the copy's too.
    await dropDatabase(config, copy);
    const mixed = await start<RestoreResult>('restoreWorkflow', { backupId, yes: true, into: { 'app-pg': { [db]: copy } } });
    await mixed.result;
    expect(await countRows(config, copy)).toBe(rows);
    const mixedActs = await scheduledActivities(mixed.handle);
    expect(mixedActs.filter((a) => a.type === 'verifyStoredArtifact').map((a) => a.input.file)).toEqual(['globals.sql.zst.age', art.file]);
    expect(mixedActs.map((a) => a.type)).not.toContain('restoreNewItem');

    // A damaged block list only costs the verify pass.
    await (await openRepository(config)).putText(`app-pg/${backupId}/${art.file}.blocks`, 'not the list\n');
    await dropDatabase(config, copy);
    await run<RestoreResult>('restoreWorkflow', input);
    expect(await countRows(config, copy)).toBe(rows);
  } finally {
    await dropDatabase(config, copy);
  }
});

test('a tampered artifact restored into a new name fails at its block and leaves nothing; into a name that exists, nothing is dropped', async () => {
  const backupId = newId();
  await run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  const url = await tamper(backupId, `${db}.dump.zst.age`, (n) => n - 100);
  const rows = await countRows(config, db);
  const copy = `${db}_bad_${randomBytes(2).toString('hex')}`;
  try {
    const f = await failureOf(run('restoreWorkflow', { backupId, yes: true, only: { 'app-pg': [db] }, into: { 'app-pg': { [db]: copy } } }));
    expect(f.type).toBe('ChecksumMismatch');
    expect(f.message).toContain(`artifact '${url}' failed its checksum at block 1 of 1`);
    expect(await countRows(config, db)).toBe(rows);
    // The database this restore created (pg_restore never got a byte of the one block) is dropped again: nothing is left.
    expect(await databaseExists(config, copy)).toBe(false);

    // Into a name that exists: the whole artifact is verified before anything is dropped, and the database is kept as it was.
    await createDatabase(config, copy);
    await pg(config, copy, (c) => c.query("CREATE TABLE kept AS SELECT 'still here' AS note"));
    const again = await failureOf(run('restoreWorkflow', { backupId, yes: true, only: { 'app-pg': [db] }, into: { 'app-pg': { [db]: copy } } }));
    expect(again.type).toBe('ChecksumMismatch');
    expect(again.message).toContain(`artifact '${url}' failed its checksum (expected `);
    expect(await countRows(config, copy, 'kept')).toBe(1);
  } finally {
    await dropDatabase(config, copy);
  }
});

test('a restore of a backup id that does not exist fails with a clear message', async () => {
  const backupId = '20200101T000000Z-dead';
  const f = await failureOf(run('restoreWorkflow', { backupId, yes: true }));
  expect(f.type).toBe('BackupNotFound');
  expect(f.message).toMatch(/^backup '20200101T000000Z-dead' does not exist for any configured target \(app-pg\) in s3:\/\/.*; run 'lifeboat ls' to see the backups$/);
  const g = await failureOf(run('restoreWorkflow', { backupId: 'not-an-id', yes: true }));
  expect(g.type).toBe('InvalidName');
  expect(g.message).toContain("backup id \"not-an-id\" is not a lifeboat backup id");
});

test('a restore without --yes waits for the approve signal and changes nothing until then', async () => {
  const backupId = newId();
  await run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  await pg(config, db, (c) => c.query("INSERT INTO tenants (name) VALUES ('not-yet-restored')"));
  const rows = await countRows(config, db);
  const { handle, result } = await start<RestoreResult>('restoreWorkflow', { backupId });
  for (let i = 0; i < 50; i++) {
    const p = await handle.query<{ stage: string }>('progress');
    if (p.stage === 'awaiting approval') break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect((await handle.query<{ stage: string }>('progress')).stage).toBe('awaiting approval');
  expect(await countRows(config, db)).toBe(rows);
  await handle.signal('approve', { by: 'test' });
  await result;
  expect(await countRows(config, db)).toBe(rows - 1);
});
