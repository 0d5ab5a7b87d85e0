import type { Readable } from 'node:stream';
import { LifeboatError, messageOf } from '../../errors';
import { withToolOutput } from '../child';
import type { BackupItem, StoreContext } from '../types';
import type { PgConn } from './conn';
import { globalsFacts, type GlobalsFacts } from './facts';
import { planGlobals, splitSql } from './globals-sql';
import { GLOBALS } from './settings';

export const GLOBALS_FORMAT = 'pg_dumpall-globals';

/** A globals dump is a few KiB per role; anything near this is not one. */
const MAX_GLOBALS_BYTES = 256 << 20;

export async function globalsItem(conn: PgConn, signal: AbortSignal): Promise<BackupItem> {
  const facts = await conn.withClient(conn.s.maintenanceDatabase, globalsFacts);
  const meta: GlobalsFacts = { ...facts, pgDumpall: (await conn.toolVersion(signal, 'pg_dumpall')).version, rolePasswords: conn.s.globalsRolePasswords };
  return { item: GLOBALS, name: GLOBALS, file: `${GLOBALS}.sql`, format: GLOBALS_FORMAT, meta: { ...meta } };
}

/** `pg_dumpall --globals-only`: roles (with their password hashes unless globalsRolePasswords is false), memberships, role settings, tablespaces. */
export async function dumpGlobals(conn: PgConn, ctx: StoreContext, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
  const args = ['--globals-only', '--database', conn.s.maintenanceDatabase, ...(conn.s.globalsRolePasswords ? [] : ['--no-role-passwords'])];
  await conn.runTool(ctx, 'pg_dumpall', args, (run) => withToolOutput(run, sink));
}

async function readAll(source: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of source) {
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    bytes += c.length;
    if (bytes > MAX_GLOBALS_BYTES) {
      source.destroy();
      throw new LifeboatError('GlobalsUnreadable', `the globals artifact is larger than ${MAX_GLOBALS_BYTES} bytes, which no pg_dumpall --globals-only writes; it was not restored`, true);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Creates the roles and tablespaces of the backup that the server lacks (see
 * globals-sql.ts for what is left out and why), through the driver.
 * Idempotent: a retry finds what the first attempt created and skips it.
 * The artifact is read to its end (and so authenticated) before anything runs.
 */
export async function restoreGlobals(conn: PgConn, ctx: StoreContext, into: string, source: Readable): Promise<void> {
  if (into !== GLOBALS) {
    source.destroy();
    throw new LifeboatError('InvalidName', `the globals of target ${conn.target} (roles and tablespaces) belong to the whole server and cannot be restored under another name ('${into}'); restore them as '${GLOBALS}', or leave them out by naming only the databases`, true);
  }
  const sql = await readAll(source);
  const server = await conn.withClient(conn.s.maintenanceDatabase, async (c) => {
    const r = await c.query<{ self: string; roles: string[]; tablespaces: string[] }>(
      'SELECT current_user AS self, ARRAY(SELECT rolname::text FROM pg_roles) AS roles, ARRAY(SELECT spcname::text FROM pg_tablespace) AS tablespaces',
    );
    const row = r.rows[0]!;
    return { self: row.self, roles: new Set(row.roles), tablespaces: new Set(row.tablespaces) };
  });
  const plan = planGlobals(sql, server);
  ctx.progress({ stage: 'restore', item: GLOBALS });
  ctx.log.info('restoring globals', { target: conn.target, createRoles: plan.createdRoles, existingRolesLeftAsTheyAre: plan.existingRoles, createTablespaces: plan.createdTablespaces, skippedStatements: plan.skipped });
  // Statement by statement through the driver, never psql: no meta-command can run, and an error
  // does not echo its statement (which may hold a password hash).
  let at = '';
  try {
    await conn.withClient(conn.s.maintenanceDatabase, async (c) => {
      await c.query('BEGIN');
      try {
        for (const [i, statement] of plan.statements.entries()) {
          // The kind and object only: the rest of a statement may hold a password hash.
          at = `statement ${i + 1} of ${plan.statements.length} (${statement.trim().split(/\s+/).slice(0, 3).join(' ')} …)`;
          await c.query(statement);
        }
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      // Roles exist now; a failure below leaves them in place and a retry skips them. CREATE TABLESPACE cannot run in a transaction.
      for (const [i, statement] of plan.tablespaceStatements.entries()) {
        at = `tablespace statement ${i + 1} of ${plan.tablespaceStatements.length}`;
        await c.query(statement);
      }
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (!code || err instanceof LifeboatError) throw err;
    // An SQL error (a tablespace folder missing, a bootstrap role that cannot lose SUPERUSER...) fails the same way on a retry.
    throw new LifeboatError(
      'GlobalsRestoreFailed',
      `restoring the globals (roles, tablespaces) of target ${conn.target} stopped at ${at}: ${messageOf(err)}; the roles are created in one transaction (all or none), tablespaces afterwards, and existing roles were left as they were; fix the cause and restore again (what exists is skipped)`,
      !/^08|^57P/.test(code),
    );
  }
}

/** For `verify`: proves the artifact is a globals dump and says what it holds. */
export async function summarizeGlobals(plaintext: Readable): Promise<string> {
  const sql = await readAll(plaintext);
  if (!sql.includes('PostgreSQL database cluster dump')) {
    throw new LifeboatError('GlobalsUnreadable', 'the globals artifact is not a pg_dumpall --globals-only dump', true);
  }
  const statements = splitSql(sql).map((s) => s.replace(/^(\s|--[^\n]*\n)*/, ''));
  const roles = statements.filter((s) => /^CREATE\s+ROLE\s/i.test(s)).length;
  const spaces = statements.filter((s) => /^CREATE\s+TABLESPACE\s/i.test(s)).length;
  return `pg_dumpall --globals-only: ${roles} roles, ${spaces} tablespaces`;
}
