import { LifeboatError } from '../../errors';

/**
 * Restoring `pg_dumpall --globals-only` onto a live server. The dump creates
 * every role and tablespace; on a server where some already exist, a plain
 * `psql -f` either aborts at the first "role already exists" (ON_ERROR_STOP)
 * or hides real errors among the expected ones. So lifeboat reads the dump as
 * statements and leaves out those about roles and tablespaces that already
 * exist: existing ones are left exactly as they are (a restore never resets a
 * password or a membership changed since the backup, and never touches the
 * role lifeboat connects as); missing ones are created with the backup's
 * attributes, password hashes, settings and memberships. What remains runs
 * statement by statement through the driver, never through psql, so no psql
 * meta-command (a backslash anywhere) can run; and only the kinds of statement
 * a globals dump contains are accepted at all: a `COPY … TO PROGRAM` in a
 * forged dump is refused before anything runs.
 */

/** Splits SQL as psql would, keeping every character: `split(sql).join('') === sql`. */
export function splitSql(sql: string): string[] {
  const out: string[] = [];
  const n = sql.length;
  let start = 0;
  let i = 0;
  let blank = true; // the current chunk has only whitespace and comments so far
  while (i < n) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') {
      const e = sql.indexOf('\n', i);
      i = e < 0 ? n : e;
    } else if (c === '/' && sql[i + 1] === '*') {
      let depth = 0;
      do {
        if (sql.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (sql.startsWith('*/', i)) {
          depth--;
          i += 2;
        } else i++;
      } while (depth > 0 && i < n);
    } else if (c === '\\' && blank) {
      // A psql meta-command (pg_dumpall writes \restrict and \unrestrict) runs to the end of its line.
      const e = sql.indexOf('\n', i);
      const end = e < 0 ? n : e + 1;
      out.push(sql.slice(start, end));
      start = i = end;
    } else if (c === "'" || c === '"') {
      const escapes = c === "'" && /[Ee]/.test(sql[i - 1] ?? '') && !/[\w$]/.test(sql[i - 2] ?? '');
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === c && sql[i + 1] === c) i += 2;
        else if (sql[i] === c) break;
        else i++;
      }
      i++;
      blank = false;
    } else if (c === ';') {
      out.push(sql.slice(start, i + 1));
      start = ++i;
      blank = true;
    } else {
      if (!/\s/.test(c)) blank = false;
      i++;
    }
  }
  if (start < n) out.push(sql.slice(start));
  return out;
}

/** A chunk's leading whitespace and comments, and its statement without the trailing `;`. */
function body(chunk: string): { lead: string; text: string } {
  let i = 0;
  for (;;) {
    while (i < chunk.length && /\s/.test(chunk[i]!)) i++;
    if (chunk.startsWith('--', i)) {
      const e = chunk.indexOf('\n', i);
      i = e < 0 ? chunk.length : e;
    } else if (chunk.startsWith('/*', i)) {
      const e = chunk.indexOf('*/', i);
      i = e < 0 ? chunk.length : e + 2;
    } else break;
  }
  return { lead: chunk.slice(0, i), text: chunk.slice(i).replace(/;\s*$/, '') };
}

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;

/** An SQL identifier as the server stores it: quoted ones verbatim, bare ones folded to lower case. */
export function identName(id: string): string {
  return id.startsWith('"') ? id.slice(1, -1).replace(/""/g, '"') : id.toLowerCase();
}

function identList(s: string): string[] | undefined {
  const re = new RegExp(`^\\s*(${IDENT})\\s*(,|$)`);
  const names: string[] = [];
  let rest = s;
  while (rest.trim()) {
    const m = re.exec(rest);
    if (!m) return undefined;
    names.push(identName(m[1]!));
    rest = rest.slice(m[0].length);
  }
  return names;
}

export interface ServerGlobals {
  /** Roles that exist on the destination before the restore. */
  roles: ReadonlySet<string>;
  tablespaces: ReadonlySet<string>;
  /** The role lifeboat is connected as: never created, altered or granted to. */
  self: string;
}

/** The statements pg_dumpall --globals-only writes; anything else in a globals artifact is refused. */
const GLOBALS_STATEMENT = /^(?:SET\s+\w+\s*(?:=|TO)\s|CREATE\s+(?:ROLE|USER|GROUP|TABLESPACE)\s|ALTER\s+(?:ROLE|USER|GROUP|TABLESPACE)\s|COMMENT\s+ON\s+(?:ROLE|TABLESPACE)\s|SECURITY\s+LABEL\s+(?:FOR\s+\S+\s+)?ON\s+(?:ROLE|TABLESPACE)\s|GRANT\s|REVOKE\s|SELECT\s+pg_catalog\.set_config\()/i;
/** GRANT/REVOKE in a globals dump are about roles, tablespaces and (15+) parameters, never tables or functions. */
const FOREIGN_GRANT = /\sON\s+(?!TABLESPACE\s|PARAMETER\s)/i;

export interface GlobalsPlan {
  /**
   * Roles, their settings, comments and memberships, in order, without
   * comments or meta-commands: run in one transaction, so a failed or
   * interrupted attempt leaves no half-made role for the next attempt to
   * mistake for an existing one.
   */
  statements: string[];
  /** Tablespace statements (CREATE TABLESPACE cannot run in a transaction), run afterwards, one at a time. */
  tablespaceStatements: string[];
  createdRoles: string[];
  /** Roles in the dump that already existed and were left as they are. */
  existingRoles: string[];
  createdTablespaces: string[];
  skipped: number;
}

const re = (s: string) => new RegExp(s.replace(/ID/g, IDENT).replace(/ /g, '\\s+'), 'is');
const CREATE_ROLE = re('^CREATE (?:ROLE|USER|GROUP) (ID)');
const ABOUT_ROLE = re('^(?:ALTER (?:ROLE|USER|GROUP) |COMMENT ON ROLE |SECURITY LABEL (?:FOR \\S+ )?ON ROLE )(ID)');
const TABLESPACE = re('^(?:CREATE TABLESPACE |ALTER TABLESPACE |COMMENT ON TABLESPACE |SECURITY LABEL (?:FOR \\S+ )?ON TABLESPACE )(ID)');
const TABLESPACE_ACL = re('^(?:GRANT|REVOKE) .*? ON TABLESPACE (ID)');
/** `GRANT a TO b`: a role membership (its names contain no ON). */
const GRANT_ROLE_ONLY = /^(?:GRANT|REVOKE)\s+(?:(?!\sON\s)[\s\S])+\s(?:TO|FROM)\s/i;
const GRANT_ROLE = re('^GRANT (.+?) TO (.+?)(?: WITH .*?)?(?: GRANTED BY ID)?$');
/** pg_dumpall's guard against meta-commands smuggled in through object names (CVE-2025-8714); no other meta-command is run. */
const RESTRICT = /^\\(?:un)?restrict\b/;

type Route = { run: 'roles' | 'tablespaces' } | { skip: string };

/** Decides, statement by statement, what a globals restore runs on a server in state `server`. */
export function planGlobals(sql: string, server: ServerGlobals): GlobalsPlan {
  const exists = (r: string) => r === server.self || server.roles.has(r);
  const created = new Set<string>();
  const existing = new Set<string>();
  const spaces = new Set<string>();
  const self = 'the role lifeboat connects as';

  const route = (text: string): Route => {
    let m: RegExpExecArray | null;
    if (text.startsWith('\\')) return { skip: RESTRICT.test(text) ? 'psql guard, not needed without psql' : 'psql meta-command' };
    if (text === '') return { skip: 'empty' };
    if (!GLOBALS_STATEMENT.test(text) || (/^(?:GRANT|REVOKE)\s/i.test(text) && FOREIGN_GRANT.test(text) && !GRANT_ROLE_ONLY.test(text))) {
      throw new LifeboatError('GlobalsUnreadable', `the globals artifact holds a statement no pg_dumpall --globals-only writes (${JSON.stringify(text.slice(0, 60))}…); nothing of it was run`, true);
    }
    if ((m = CREATE_ROLE.exec(text))) {
      const r = identName(m[1]!);
      if (!exists(r)) {
        created.add(r);
        return { run: 'roles' };
      }
      existing.add(r);
      return { skip: r === server.self ? self : 'role exists' };
    }
    if ((m = ABOUT_ROLE.exec(text))) {
      const r = identName(m[1]!);
      return exists(r) ? { skip: r === server.self ? self : 'role exists' } : { run: 'roles' };
    }
    if ((m = TABLESPACE.exec(text) ?? TABLESPACE_ACL.exec(text))) {
      const t = identName(m[1]!);
      if (server.tablespaces.has(t)) return { skip: 'tablespace exists' };
      if (/^CREATE/i.test(text)) spaces.add(t);
      return { run: 'tablespaces' };
    }
    if ((m = GRANT_ROLE.exec(text)) && !/\sON\s/i.test(m[1]!)) {
      const granted = identList(m[1]!);
      const members = identList(m[2]!);
      if (granted && members) {
        if (members.includes(server.self)) return { skip: self };
        // A membership between two roles that already existed may have been revoked on purpose since the backup.
        if ([...granted, ...members].every(exists)) return { skip: 'roles exist' };
      }
    }
    return { run: 'roles' };
  };

  let skipped = 0;
  const statements: string[] = [];
  const tablespaceStatements: string[] = [];
  for (const chunk of splitSql(sql)) {
    const r = route(body(chunk).text);
    if ('run' in r) (r.run === 'roles' ? statements : tablespaceStatements).push(body(chunk).text);
    else if (r.skip !== 'empty') skipped++;
  }
  return {
    statements,
    tablespaceStatements,
    createdRoles: [...created],
    existingRoles: [...existing],
    createdTablespaces: [...spaces],
    skipped,
  };
}
