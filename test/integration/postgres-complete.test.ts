import { chmod, link, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LifeboatError } from '../../src/errors';
import type { BackupItem, StoreContext } from '../../src/stores';
import { PostgresStore } from '../../src/stores/postgres';
import { shred, withSpool } from '../../src/stores/postgres/spool';
import { testEnv, uniq } from '../helpers/env';
import { countRows, createDatabase, databaseExists, dropDatabase, pg, seedApp } from '../helpers/pg';

/** Three databases and their roles, as a product with one database per service has them. */
const env = testEnv('pgcomplete', { databases: 3 });
const [db0, db1, db2] = env.databases as [string, string, string];
const target = env.config.targets.get('app-pg')!;
const withSettings = (extra: Record<string, unknown>) => new PostgresStore(env.config.file, { ...target, settings: { ...target.settings, ...extra } });
const store = withSettings({});
const owner = uniq('lbt_svc');
const reader = uniq('lbt_ro');
const warnings: string[] = [];
const ctx: StoreContext = { signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: (m) => warnings.push(m) } };
const extraDatabases = [`${db1}_copy`, `${db1}_plain`, `${db1}_jobs`];

type Dump = Array<{ item: BackupItem; bytes: Buffer }>;

async function backupAll(s = store): Promise<Dump> {
  const out: Dump = [];
  for (const item of await s.items(ctx)) {
    const chunks: Buffer[] = [];
    await s.backup(ctx, item, async (plaintext) => {
      for await (const c of plaintext) chunks.push(c as Buffer);
    });
    out.push({ item, bytes: Buffer.concat(chunks) });
  }
  return out;
}

const of = (dump: Dump, name: string) => dump.find((d) => d.item.name === name)!;
const q = <T>(db: string, sql: string, params: unknown[] = []) => pg(env.config, db, async (c) => (await c.query(sql, params)).rows as T[]);
const tableOwner = async (db: string, table: string) => (await q<{ o: string }>(db, 'SELECT tableowner AS o FROM pg_tables WHERE tablename = $1', [table]))[0]?.o;
const dbOwner = async (db: string) => (await q<{ o: string }>('postgres', 'SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = $1', [db]))[0]?.o;
const canRead = async (db: string, role: string, table: string) => (await q<{ ok: boolean }>(db, 'SELECT has_table_privilege($1, $2, \'SELECT\') AS ok', [role, table]))[0]!.ok;
const password = async (role: string) => (await q<{ p: string }>('postgres', 'SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [role]))[0]?.p;

async function dropRoles() {
  await pg(env.config, 'postgres', async (c) => {
    for (const r of [reader, owner]) await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(r)}`);
  });
}

async function dropAll() {
  for (const db of [...env.databases, ...extraDatabases]) await dropDatabase(env.config, db);
}

beforeAll(async () => {
  await pg(env.config, 'postgres', async (c) => {
    await c.query(`CREATE ROLE ${c.escapeIdentifier(owner)} LOGIN PASSWORD 'service-pw'`);
    await c.query(`CREATE ROLE ${c.escapeIdentifier(reader)} NOLOGIN`);
  });
  for (const db of env.databases) await createDatabase(env.config, db);
  // db0: owned by the service role, like each of the reference product's per-service databases.
  await pg(env.config, 'postgres', (c) => c.query(`ALTER DATABASE ${c.escapeIdentifier(db0)} OWNER TO ${c.escapeIdentifier(owner)}`));
  await seedApp(env.config, db0, 120);
  await store.seedMarkers(ctx, db0, 137, 'complete-nonce');
  // db1: a table the service role owns, readable by another role.
  await pg(env.config, db1, async (c) => {
    await c.query(`GRANT CREATE ON SCHEMA public TO ${c.escapeIdentifier(owner)}`);
    await c.query(`SET ROLE ${c.escapeIdentifier(owner)}`);
    await c.query('CREATE TABLE ledger (id serial PRIMARY KEY, amount numeric NOT NULL)');
    await c.query('INSERT INTO ledger (amount) SELECT g FROM generate_series(1, 250) g');
    await c.query(`GRANT SELECT ON ledger TO ${c.escapeIdentifier(reader)}`);
  });
  // db2: needs an extension.
  await pg(env.config, db2, (c) => c.query('CREATE EXTENSION pgcrypto'));
  await seedApp(env.config, db2, 80);
  await pg(env.config, db2, (c) => c.query("ALTER TABLE tenants ADD COLUMN h bytea GENERATED ALWAYS AS (digest(name, 'sha256')) STORED"));
});

afterAll(async () => {
  await dropAll();
  await dropRoles();
});

test('items: the globals first, then each database with what its restore needs', async () => {
  const items = await store.items(ctx);
  expect(items.map((i) => [i.name, i.file, i.format])).toEqual([
    ['globals', 'globals.sql', 'pg_dumpall-globals'],
    [db0, `${db0}.dump`, 'pg_dump-custom'],
    [db1, `${db1}.dump`, 'pg_dump-custom'],
    [db2, `${db2}.dump`, 'pg_dump-custom'],
  ]);
  expect(items[0]!.meta!.roles).toEqual(expect.arrayContaining([owner, reader]));
  const [, m0, m1, m2] = items.map((i) => i.meta as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
  expect(m0).toMatchObject({ owner, encoding: 'UTF8', serverVersion: expect.stringMatching(/^15\./), pgDump: expect.stringMatching(/^\d+\.\d+/) });
  expect(m0!.roles.owner).toEqual(expect.arrayContaining([owner, 'lifeboat']));
  // The owner appears in the table's ACL too (its own privileges): GRANTs name both.
  expect(m1!.roles).toMatchObject({ owner: expect.arrayContaining([owner]), acl: [owner, reader].sort(), policy: [] });
  expect(m2!.extensions).toEqual(expect.arrayContaining([{ name: 'pgcrypto', version: expect.stringMatching(/^\d/) }, { name: 'plpgsql', version: '1.0' }]));
});

test('three databases and the roles: back up all, drop all, restore all (globals first): roles, owners, grants and rows come back', async () => {
  const dump = await backupAll();
  const pw = await password(owner);
  await dropAll();
  await dropRoles();
  expect(await databaseExists(env.config, db1)).toBe(false);

  for (const { item, bytes } of dump) await store.restore(ctx, item, item.name, Readable.from([bytes]));

  expect(await password(owner)).toBe(pw);
  expect(await dbOwner(db0)).toBe(owner);
  expect(await countRows(env.config, db0)).toBe(120);
  expect((await store.countMarkers(ctx, db0, 'complete-nonce')).found).toHaveLength(137);
  expect(await tableOwner(db1, 'ledger')).toBe(owner);
  expect(await countRows(env.config, db1, 'ledger')).toBe(250);
  expect(await canRead(db1, reader, 'ledger')).toBe(true);
  expect(await countRows(env.config, db2)).toBe(80);
  expect((await q<{ n: number }>(db2, "SELECT count(*)::int AS n FROM tenants WHERE h = digest(name, 'sha256')"))[0]!.n).toBe(80);
});

test('one database restores under another name; the others are not touched', async () => {
  const dump = await backupAll();
  await pg(env.config, db1, (c) => c.query('DELETE FROM ledger WHERE id > 200'));
  const copy = `${db1}_copy`;
  await store.restore(ctx, of(dump, db1).item, copy, Readable.from([of(dump, db1).bytes]));
  expect(await countRows(env.config, copy, 'ledger')).toBe(250);
  expect(await countRows(env.config, db1, 'ledger')).toBe(200);
  expect(await tableOwner(copy, 'ledger')).toBe(owner);
  expect(await countRows(env.config, db0)).toBe(120);
});

test('noOwner and noPrivileges: objects belong to the restoring user and GRANTs are left out', async () => {
  const dump = await backupAll();
  const plain = withSettings({ noOwner: true, noPrivileges: true });
  const into = `${db1}_plain`;
  await plain.restore(ctx, of(dump, db1).item, into, Readable.from([of(dump, db1).bytes]));
  expect(await tableOwner(into, 'ledger')).toBe('lifeboat');
  expect(await dbOwner(into)).toBe('lifeboat');
  expect(await canRead(into, reader, 'ledger')).toBe(false);
  expect(await countRows(env.config, into, 'ledger')).toBe(200);
});

test('post-restore checks: a query in a read-only transaction, true or not', async () => {
  expect(await store.check(ctx, db1, 'SELECT count(*) = 200 FROM ledger')).toBe(true);
  expect(await store.check(ctx, undefined, 'SELECT count(*) > 1000 FROM tenants')).toBe(false);
  await expect(store.check(ctx, db1, 'DELETE FROM ledger RETURNING true')).rejects.toThrow(/read-only transaction/);
  expect(await countRows(env.config, db1, 'ledger')).toBe(200);
});

describe('preflight: what the restore needs is checked before anything is dropped', () => {
  const withMeta = (item: BackupItem, meta: Record<string, unknown>): BackupItem => ({ ...item, meta: { ...item.meta, ...meta } });

  test('a missing extension fails permanently, naming the database, the extension and the fix; the database keeps its rows', async () => {
    const dump = await backupAll();
    const { item, bytes } = of(dump, db2);
    const meta = item.meta as { extensions: Array<{ name: string; version: string }> };
    const needy = withMeta(item, { extensions: [...meta.extensions, { name: 'lifeboat_no_such_ext', version: '1.0' }, { name: 'postgis', version: '3.4.2' }] });
    const source = Readable.from([bytes]);
    const err = (await store.restore(ctx, needy, db2, source).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('ExtensionMissing');
    expect(store.isPermanent(err)).toBe(true);
    expect(err.message).toContain(`restore of target app-pg (PostgreSQL 15.`);
    expect(err.message).toContain(`database '${db2}' needs extension 'lifeboat_no_such_ext' (1.0 at backup), which is not available on the server`);
    expect(err.message).toContain("install the package that provides extension 'lifeboat_no_such_ext' for PostgreSQL 15 on the database server, then restore again");
    expect(err.message).toContain(`database '${db2}' needs extension 'postgis' (3.4.2 at backup)`);
    expect(err.message).toContain('install PostGIS for PostgreSQL 15 on the database server (Debian/Ubuntu: postgresql-15-postgis-3)');
    expect(err.message).toMatch(new RegExp(`Database '${db2}' was left as it was$`));
    expect(source.destroyed).toBe(true);
    expect(await countRows(env.config, db2)).toBe(80);
    // The same check, as the optional Store method a workflow can call before it stops the writers.
    await expect(store.preflight(ctx, [needy])).rejects.toMatchObject({ type: 'ExtensionMissing' });
    await expect(store.preflight(ctx, dump.map((d) => d.item))).resolves.toBeUndefined();
  });

  test('an extension in another version is a warning, not a stop', async () => {
    const { item } = of(await backupAll(), db2);
    warnings.length = 0;
    await store.preflight(ctx, [withMeta(item, { extensions: [{ name: 'pgcrypto', version: '0.9' }] })]);
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`database '${db2}' used extension 'pgcrypto' 0\\.9; the server offers .*1\\.3`))]);
  });

  test('roles the dump names must exist, or come with the globals of the same restore, or be waived by noOwner/noPrivileges', async () => {
    const dump = await backupAll();
    const ghost = uniq('lbt_ghost');
    const { item, bytes } = of(dump, db1);
    const haunted = withMeta(item, { roles: { owner: [owner, ghost], acl: [reader], policy: [] } });
    const err = (await store.restore(ctx, haunted, db1, Readable.from([bytes])).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('RoleMissing');
    expect(err.message).toContain(`database '${db1}' names role '${ghost}' (as owner, in GRANTs or in policies), which the server does not have: restore the target's globals first`);
    expect(await countRows(env.config, db1, 'ledger')).toBe(200);
    const globals = withMeta(of(dump, 'globals').item, { roles: [ghost] });
    await expect(store.preflight(ctx, [globals, haunted])).resolves.toBeUndefined();
    await expect(withSettings({ noOwner: true }).preflight(ctx, [haunted])).resolves.toBeUndefined();
  });

  test('a dump newer than pg_restore is refused before the drop', async () => {
    const { item, bytes } = of(await backupAll(), db1);
    const err = (await store.restore(ctx, withMeta(item, { pgDump: '99.1' }), db1, Readable.from([bytes])).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('ToolTooOld');
    expect(err.message).toMatch(new RegExp(`database '${db1}' was dumped by pg_dump 99\\.1, which pg_restore 15\\.\\d+ \\(.*pg_restore\\) cannot read: install postgresql-client-99`));
    expect(await countRows(env.config, db1, 'ledger')).toBe(200);
  });
});

describe('pg_restore --jobs with a private spool file', () => {
  let spoolDir: string;
  beforeAll(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'lifeboat-spooltest-'));
  });
  afterAll(async () => {
    await rm(spoolDir, { recursive: true, force: true });
  });

  test('restores in parallel from the spool, and leaves nothing behind', async () => {
    const dump = await backupAll();
    const parallel = withSettings({ jobs: 3, spoolDir });
    expect((await parallel.probe(ctx)).capabilities).toContain('pg_restore-jobs-3');
    const into = `${db1}_jobs`;
    const stages: string[] = [];
    await parallel.restore({ ...ctx, progress: (p) => stages.push(p.stage) }, of(dump, db1).item, into, Readable.from([of(dump, db1).bytes]));
    expect(await countRows(env.config, into, 'ledger')).toBe(200);
    expect(await tableOwner(into, 'ledger')).toBe(owner);
    expect(stages.indexOf('spool')).toBeLessThan(stages.indexOf('drop'));
    expect(await readdir(spoolDir)).toEqual([]);
  });

  test('an artifact that fails while spooling leaves the database as it was and the spool empty', async () => {
    const parallel = withSettings({ jobs: 2, spoolDir });
    const { item, bytes } = of(await backupAll(), db1);
    const broken = Readable.from(
      (async function* () {
        yield bytes.subarray(0, 100);
        throw new LifeboatError('AgeAuthFailed', 'artifact failed its authentication at chunk 2; it was not restored');
      })(),
    );
    const err = (await parallel.restore(ctx, item, db1, broken).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('AgeAuthFailed');
    expect(await countRows(env.config, db1, 'ledger')).toBe(200);
    expect(await readdir(spoolDir)).toEqual([]);
  });

  test('the spool is mode 600 in a mode 700 folder, and is overwritten with zeros before it is unlinked, whatever happens', async () => {
    let seen = '';
    const log = { info: () => undefined, warn: () => undefined };
    const err = await withSpool(spoolDir, 'x', Readable.from([Buffer.from('plaintext dump')]), { signal: ctx.signal, log }, async (path) => {
      seen = path;
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect((await stat(join(path, '..'))).mode & 0o777).toBe(0o700);
      expect(await readFile(path, 'utf8')).toBe('plaintext dump');
      throw new Error('pg_restore failed');
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('pg_restore failed');
    await expect(stat(seen)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(spoolDir)).toEqual([]);

    // A second name for the same inode shows what shred left in the blocks.
    const file = join(spoolDir, 'f');
    await writeFile(file, 'secret'.repeat(300_000));
    await link(file, join(spoolDir, 'peek'));
    await shred(file);
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    const left = await readFile(join(spoolDir, 'peek'));
    expect(left.length).toBe(1_800_000);
    expect(left.every((b) => b === 0)).toBe(true);
    await rm(join(spoolDir, 'peek'));
  });

  test('createOnly (a restore into a new name), with and without the spool: never drops what exists, and leaves nothing when it fails', async () => {
    const { item, bytes } = of(await backupAll(), db1);
    for (const s of [store, withSettings({ jobs: 2, spoolDir })]) {
      // A name that exists: AlreadyExists, and the database is as it was.
      const err = (await s.restore(ctx, item, db1, Readable.from([bytes]), { createOnly: true }).catch((e: unknown) => e)) as LifeboatError;
      expect(err.type).toBe('AlreadyExists');
      expect(err.message).toContain(`database '${db1}' already exists on `);
      expect(await countRows(env.config, db1, 'ledger')).toBe(200);
      // A new name whose stream breaks half-way: the database it created is dropped again.
      const into = `${db1}_new`;
      const broken = Readable.from(
        (async function* () {
          yield bytes.subarray(0, bytes.length >> 1);
          throw new LifeboatError('ChecksumMismatch', 'artifact failed its checksum at block 2 of 3');
        })(),
      );
      expect(await s.restore(ctx, item, into, broken, { createOnly: true }).catch((e: unknown) => (e as LifeboatError).type)).toBe('ChecksumMismatch');
      expect(await databaseExists(env.config, into)).toBe(false);
      // And whole: restored.
      await s.restore(ctx, item, into, Readable.from([bytes]), { createOnly: true });
      expect(await countRows(env.config, into, 'ledger')).toBe(200);
      await dropDatabase(env.config, into);
    }
    expect(await readdir(spoolDir)).toEqual([]);
  });

  test('a spool folder that cannot be created is a clear, permanent error before anything is dropped', async () => {
    const parallel = withSettings({ jobs: 2, spoolDir: join(spoolDir, 'missing', 'deeper') });
    const { item, bytes } = of(await backupAll(), db1);
    const err = (await parallel.restore(ctx, item, db1, Readable.from([bytes])).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('SpoolFailed');
    expect(err.message).toContain(`cannot create a spool folder in ${join(spoolDir, 'missing', 'deeper')} for pg_restore --jobs (ENOENT)`);
    expect(parallel.isPermanent(err)).toBe(true);
    expect(await countRows(env.config, db1, 'ledger')).toBe(200);
  });
});

test('probe refuses a pg_dump (or pg_dumpall) older than the server, saying which one and what to install', async () => {
  const bin = await mkdtemp(join(tmpdir(), 'lifeboat-fakebin-'));
  try {
    const fake = async (tool: string, version: string) => {
      await writeFile(join(bin, tool), `#!/bin/sh\necho "${tool} (PostgreSQL) ${version}"\n`);
      await chmod(join(bin, tool), 0o755);
    };
    await fake('pg_dump', '14.9');
    const old = withSettings({ binDir: bin });
    const err = (await old.probe(ctx).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('ToolTooOld');
    expect(old.isPermanent(err)).toBe(true);
    expect(err.message).toMatch(
      new RegExp(
        `^pg_dump 14\\.9 \\(${bin}/pg_dump\\) is older than the server of target app-pg \\(PostgreSQL 15\\.\\d+ at 127\\.0\\.0\\.1:15432\\) and cannot dump it: pg_dump only dumps servers of its own major version or older\\. Install the PostgreSQL 15 client tools on the worker \\(Debian/Ubuntu: postgresql-client-15\\) and, if they are not found in /usr/lib/postgresql/15/bin, set targets\\.app-pg\\.binDir to their folder$`,
      ),
    );
    await fake('pg_dump', '15.18');
    await fake('pg_dumpall', '13.2');
    expect(((await old.probe(ctx).catch((e: unknown) => e)) as Error).message).toMatch(/^pg_dumpall 13\.2 .* is older than the server/);
    // Without globals, pg_dumpall is not needed.
    for (const t of ['pg_restore', 'psql']) await fake(t, '15.18');
    expect((await withSettings({ binDir: bin, globals: false }).probe(ctx)).tools).toEqual({ pg_dump: '15.18', pg_restore: '15.18' });
  } finally {
    await rm(bin, { recursive: true, force: true });
  }
});
