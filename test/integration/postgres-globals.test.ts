import { existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { LifeboatError } from '../../src/errors';
import type { StoreContext } from '../../src/stores';
import { PostgresStore } from '../../src/stores/postgres';
import { planGlobals, splitSql } from '../../src/stores/postgres/globals-sql';
import { testEnv, uniq } from '../helpers/env';
import { createDatabase, dropDatabase, pg } from '../helpers/pg';

const env = testEnv('pgglobals');
const target = env.config.targets.get('app-pg')!;
const store = new PostgresStore(env.config.file, target);
const logs: Array<{ message: string; meta?: Record<string, unknown> }> = [];
const ctx: StoreContext = { signal: new AbortController().signal, progress: () => undefined, log: { info: (message, meta) => logs.push({ message, meta }), warn: () => undefined } };
const globalsItem = { item: 'globals', name: 'globals', file: 'globals.sql', format: 'pg_dumpall-globals' };

const DUMP = `--
-- PostgreSQL database cluster dump
--

\\restrict abc123

SET default_transaction_read_only = off;

--
-- Roles
--

CREATE ROLE "App Reader";
ALTER ROLE "App Reader" WITH NOSUPERUSER INHERIT NOLOGIN;
CREATE ROLE app_owner;
ALTER ROLE app_owner WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:x==$y=:z=';
COMMENT ON ROLE app_owner IS 'it''s
multi-line; CREATE ROLE evil;';
CREATE ROLE lifeboat;
ALTER ROLE lifeboat WITH SUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:other';
ALTER ROLE app_owner SET search_path TO 'app', 'public';
GRANT app_owner TO "App Reader" GRANTED BY lifeboat;
GRANT app_owner TO lifeboat GRANTED BY lifeboat;
GRANT old_a TO old_b GRANTED BY lifeboat;
CREATE TABLESPACE fast OWNER app_owner LOCATION '/srv/fast';

\\unrestrict abc123
`;

describe('globals SQL, statement by statement', () => {
  test('splitting keeps every character and respects quotes, comments and psql meta-commands', () => {
    const parts = splitSql(DUMP);
    expect(parts.join('')).toBe(DUMP);
    expect(parts.some((p) => p.includes("IS 'it''s\nmulti-line; CREATE ROLE evil;';"))).toBe(true);
    expect(parts.filter((p) => /^\\/m.test(p)).map((p) => p.trim().split('\n').at(-1))).toEqual(['\\restrict abc123', '\\unrestrict abc123']);
    expect(splitSql("SELECT E'a\\';b'; SELECT \"x;y\"; /* a; /* b; */ c; */ SELECT 1;")).toHaveLength(3);
  });

  test('on an empty server everything but the connecting role is created', () => {
    const plan = planGlobals(DUMP, { roles: new Set(), tablespaces: new Set(), self: 'lifeboat' });
    expect(plan.createdRoles).toEqual(['App Reader', 'app_owner']);
    expect(plan.existingRoles).toEqual(['lifeboat']);
    expect(plan.createdTablespaces).toEqual(['fast']);
    const sql = plan.statements.join(';\n');
    expect(sql).not.toMatch(/ROLE lifeboat|TO lifeboat GRANTED|SCRAM-SHA-256\$4096:other/);
    expect(sql).toContain("ALTER ROLE app_owner WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:x==$y=:z='");
    expect(sql).toContain('GRANT app_owner TO "App Reader" GRANTED BY lifeboat');
    // Roles run in one transaction, tablespaces afterwards; no meta-command, no comment.
    expect(sql).not.toContain('CREATE TABLESPACE');
    expect(sql).not.toMatch(/\\|--/);
    expect(plan.tablespaceStatements).toEqual(["CREATE TABLESPACE fast OWNER app_owner LOCATION '/srv/fast'"]);
  });

  test('no psql meta-command ever runs: the statements go to the server one by one, and only the kinds a globals dump has', () => {
    const plan = planGlobals('\\restrict k\nCREATE ROLE a;\n\\! touch /tmp/owned\n\\unrestrict k\n', { roles: new Set(), tablespaces: new Set(), self: 'lifeboat' });
    expect(plan.statements).toEqual(['CREATE ROLE a']);
    expect(plan.tablespaceStatements).toEqual([]);
    const empty = { roles: new Set<string>(), tablespaces: new Set<string>(), self: 'lifeboat' };
    expect(() => planGlobals("CREATE ROLE a;\nCOPY (SELECT 1) TO PROGRAM 'touch /tmp/owned';\n", empty)).toThrow(/holds a statement no pg_dumpall --globals-only writes \("COPY \(SELECT 1\) TO PROGRAM/);
    expect(() => planGlobals('CREATE ROLE a;\nSELECT 1 \\! touch /tmp/owned\n;', empty)).toThrow(/holds a statement no pg_dumpall --globals-only writes/);
    expect(() => planGlobals('GRANT SELECT ON TABLE t TO a;', empty)).toThrow(/holds a statement/);
    expect(planGlobals('GRANT ALL ON TABLESPACE fast TO a;', empty).tablespaceStatements).toEqual(['GRANT ALL ON TABLESPACE fast TO a']);
  });

  test('existing roles, memberships between them and tablespaces are left as they are', () => {
    const plan = planGlobals(DUMP, { roles: new Set(['app_owner', 'old_a', 'old_b']), tablespaces: new Set(['fast']), self: 'lifeboat' });
    expect(plan.createdRoles).toEqual(['App Reader']);
    expect(plan.existingRoles.sort()).toEqual(['app_owner', 'lifeboat']);
    const sql = plan.statements.join(';\n');
    expect(sql).not.toMatch(/CREATE ROLE app_owner|ALTER ROLE app_owner|COMMENT ON ROLE app_owner|GRANT old_a|CREATE TABLESPACE/);
    expect(plan.tablespaceStatements).toEqual([]);
    // A membership of a newly created role is restored.
    expect(sql).toContain('GRANT app_owner TO "App Reader"');
  });
});

describe('globals against the real server', () => {
  const owner = uniq('lbt_owner');
  const reader = uniq('lbt_reader');
  const dropRoles = () => pg(env.config, 'postgres', async (c) => {
    await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(reader)}`);
    await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(owner)}`);
  });
  const dumpGlobals = async (s = store) => {
    const item = (await s.items(ctx))[0]!;
    let text = '';
    await s.backup(ctx, item, async (plaintext) => {
      for await (const c of plaintext) text += (c as Buffer).toString('utf8');
    });
    return { item, text };
  };
  const roleState = (name: string) =>
    pg(env.config, 'postgres', async (c) => (await c.query('SELECT r.rolcanlogin, a.rolpassword, r.rolconfig FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname = $1', [name])).rows[0] as { rolcanlogin: boolean; rolpassword: string | null; rolconfig: string[] | null } | undefined);
  const isMember = (role: string, member: string) => pg(env.config, 'postgres', async (c) => (await c.query('SELECT pg_has_role($1, $2, \'MEMBER\') AS m', [member, role])).rows[0].m as boolean);

  beforeAll(async () => {
    await pg(env.config, 'postgres', async (c) => {
      await c.query(`CREATE ROLE ${c.escapeIdentifier(owner)} LOGIN PASSWORD 'owner-pw'`);
      await c.query(`ALTER ROLE ${c.escapeIdentifier(owner)} SET statement_timeout = '5min'`);
      await c.query(`CREATE ROLE ${c.escapeIdentifier(reader)} NOLOGIN`);
      await c.query(`GRANT ${c.escapeIdentifier(owner)} TO ${c.escapeIdentifier(reader)}`);
    });
    await createDatabase(env.config, env.databases[0]!);
  });
  afterAll(async () => {
    await dropDatabase(env.config, env.databases[0]!);
    await dropRoles();
  });

  test('the globals item comes first and records the roles it holds', async () => {
    const items = await store.items(ctx);
    expect(items[0]).toMatchObject({ ...globalsItem, meta: { rolePasswords: true } });
    expect(items[0]!.meta!.roles).toEqual(expect.arrayContaining([owner, reader, 'lifeboat']));
    expect(items.slice(1).map((i) => i.name)).toEqual(env.databases);
  });

  test('pg_dumpall --globals-only, with password hashes by default and without them when asked', async () => {
    const { text } = await dumpGlobals();
    expect(text).toContain('PostgreSQL database cluster dump');
    expect(text).toMatch(new RegExp(`ALTER ROLE ${owner} WITH .*LOGIN.* PASSWORD 'SCRAM-SHA-256`));
    const bare = new PostgresStore(env.config.file, { ...target, settings: { ...target.settings, globalsRolePasswords: false } });
    const { item, text: noPw } = await dumpGlobals(bare);
    expect(item.meta).toMatchObject({ rolePasswords: false });
    expect(noPw).toContain(`CREATE ROLE ${owner};`);
    expect(noPw).not.toContain('PASSWORD');
    expect(await store.inspect(ctx, globalsItem, Readable.from([text]))).toMatch(/^pg_dumpall --globals-only: \d+ roles, 0 tablespaces$/);
  });

  test('dropped roles come back with their password hash, settings and memberships; existing ones are left alone', async () => {
    const { text } = await dumpGlobals();
    const before = await roleState(owner);
    const self = await roleState('lifeboat');
    await dropRoles();
    await store.restore(ctx, globalsItem, 'globals', Readable.from([text]));
    expect(await roleState(owner)).toEqual(before);
    expect(before!.rolpassword).toMatch(/^SCRAM-SHA-256/);
    expect(await isMember(owner, reader)).toBe(true);
    expect(await roleState('lifeboat')).toEqual(self);
    expect(logs.at(-1)!.meta).toMatchObject({ createRoles: expect.arrayContaining([owner, reader]) });

    // Changed since the backup: a new password, a revoked membership. A second restore keeps both changes.
    await pg(env.config, 'postgres', async (c) => {
      await c.query(`ALTER ROLE ${c.escapeIdentifier(owner)} PASSWORD 'rotated'`);
      await c.query(`REVOKE ${c.escapeIdentifier(owner)} FROM ${c.escapeIdentifier(reader)}`);
    });
    const rotated = await roleState(owner);
    await store.restore(ctx, globalsItem, 'globals', Readable.from([text]));
    expect(await roleState(owner)).toEqual(rotated);
    expect(await isMember(owner, reader)).toBe(false);
    expect(logs.at(-1)!.meta).toMatchObject({ createRoles: [], existingRolesLeftAsTheyAre: expect.arrayContaining([owner, reader, 'lifeboat']) });
  });

  test('a backslash in the middle of a statement reaches the server as SQL, never a shell: it fails, and the roles are rolled back', async () => {
    const extra = uniq('lbt_bs');
    const owned = `/tmp/${uniq('lifeboat-owned')}`;
    const sql = `CREATE ROLE ${extra};\nALTER ROLE ${extra} WITH LOGIN \\! touch ${owned}\n;\n`;
    const err = (await store.restore(ctx, globalsItem, 'globals', Readable.from([sql])).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('GlobalsRestoreFailed');
    expect(err.message).toContain('syntax error');
    expect(await roleState(extra)).toBeUndefined();
    expect(existsSync(owned)).toBe(false);
  });

  test('a real error stops the globals restore with the server\'s words and where, not hidden among "already exists"', async () => {
    const extra = uniq('lbt_extra');
    const sql = `CREATE ROLE ${extra};\nCREATE ROLE lifeboat;\nCREATE TABLESPACE ${uniq('lbt_ts')} LOCATION '/nonexistent/lifeboat-test';\nCREATE ROLE never_reached_${extra};\n`;
    try {
      const err = (await store.restore(ctx, globalsItem, 'globals', Readable.from([sql])).catch((e: unknown) => e)) as LifeboatError;
      expect(err.type).toBe('GlobalsRestoreFailed');
      expect(err.message).toMatch(/stopped at tablespace statement 1 of 1: directory "\/nonexistent\/lifeboat-test" does not exist/);
      expect(err.message).toContain('existing roles were left as they were');
      expect(store.isPermanent(err)).toBe(true);
      // The roles went in first, in their own transaction; a retry skips them.
      expect(await roleState(extra)).toBeDefined();
      expect(await roleState(`never_reached_${extra}`)).toBeDefined();
    } finally {
      await pg(env.config, 'postgres', (c) => c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(extra)}, ${c.escapeIdentifier(`never_reached_${extra}`)}`));
    }
  });

  test('an error rolls the roles back and does not echo its statement, which may hold a password hash', async () => {
    const extra = uniq('lbt_echo');
    const sql = `CREATE ROLE ${extra};\nALTER ROLE ${extra} WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:not-for-logs' NOSUCHOPTION;\n`;
    try {
      const err = (await store.restore(ctx, globalsItem, 'globals', Readable.from([sql])).catch((e: unknown) => e)) as LifeboatError;
      expect(err.type).toBe('GlobalsRestoreFailed');
      expect(err.message).toContain(`stopped at statement 2 of 2 (ALTER ROLE ${extra} …)`);
      expect(err.message).not.toContain('not-for-logs');
      // The roles' transaction was rolled back: no half-made role for a retry to mistake for an existing one.
      expect(await roleState(extra)).toBeUndefined();
    } finally {
      await pg(env.config, 'postgres', (c) => c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(extra)}`));
    }
  });

  test('globals are not renamed, and dropping them is a no-op', async () => {
    const err = (await store.restore(ctx, globalsItem, 'globals_copy', Readable.from(['SELECT 1;'])).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('InvalidName');
    expect(err.message).toContain("cannot be restored under another name ('globals_copy')");
    expect(store.isPermanent(err)).toBe(true);
    const db = (await store.items(ctx))[1]!;
    await expect(store.restore(ctx, db, 'globals', Readable.from([Buffer.alloc(0)]))).rejects.toMatchObject({ type: 'InvalidName', permanent: true });
    await store.drop(ctx, 'globals');
    expect(await roleState(owner)).toBeDefined();
  });

  test('a database named like the globals item is refused while globals are backed up', () => {
    expect(() => new PostgresStore(env.config.file, { ...target, settings: { ...target.settings, databases: ['app', 'globals'] } })).toThrow(/lists a database named 'globals'.*set 'targets\.app-pg\.globals: false'/);
    const without = new PostgresStore(env.config.file, { ...target, settings: { ...target.settings, databases: ['globals'], globals: false } });
    expect(without.drillName()).toBe('globals');
  });
});
