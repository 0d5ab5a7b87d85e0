import type { Client } from 'pg';

/**
 * What a database dump needs from the server it is restored into, recorded
 * at backup time in the item's manifest meta so a restore can check it
 * before dropping anything.
 */
export interface DatabaseFacts {
  serverVersion: string;
  /** Version of the pg_dump that wrote the dump: pg_restore must be at least as new. */
  pgDump: string;
  owner: string;
  encoding: string;
  extensions: Array<{ name: string; version: string }>;
  /** Roles the dump names: as object owners, in GRANTs (and default privileges), in row-level security policies. */
  roles: { owner: string[]; acl: string[]; policy: string[] };
}

/** What the globals item recorded: the roles and tablespaces it creates. */
export interface GlobalsFacts {
  serverVersion: string;
  pgDumpall: string;
  rolePasswords: boolean;
  roles: string[];
  tablespaces: string[];
}

/** `15.18 (Debian 15.18-0+deb12u1)` -> `15.18`. */
export const shortVersion = (v: string): string => v.split(' ')[0] ?? v;

const NOT_EXTENSION_MEMBER = (catalog: string, alias: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '${catalog}'::regclass AND e.objid = ${alias}.oid AND e.deptype = 'e')`;

/*
 * pg_shdepend lists every role an object of this database depends on, except
 * the bootstrap superuser (oid 10, pinned): that one is named when it owns an
 * object the dump recreates. Objects that belong to an extension are left out
 * (CREATE EXTENSION recreates them, owned by whoever restores).
 */
const ROLES_SQL = `
SELECT DISTINCT CASE WHEN d.classid = 'pg_default_acl'::regclass THEN 'a' ELSE d.deptype::text END AS use, r.rolname AS role
  FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
 WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND d.refclassid = 'pg_authid'::regclass AND d.deptype IN ('o', 'a', 'r')
   AND d.classid <> 'pg_extension'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classid AND e.objid = d.objid AND e.deptype = 'e')
UNION
SELECT 'o', r.rolname FROM pg_roles r
 WHERE r.oid = 10 AND (
   EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = 10 AND c.oid >= 16384 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND ${NOT_EXTENSION_MEMBER('pg_class', 'c')})
   OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = 10 AND n.oid >= 16384 AND ${NOT_EXTENSION_MEMBER('pg_namespace', 'n')})
   OR EXISTS (SELECT 1 FROM pg_proc p WHERE p.proowner = 10 AND p.oid >= 16384 AND ${NOT_EXTENSION_MEMBER('pg_proc', 'p')}))`;

/** Facts about the database `c` is connected to (all but the tool version). */
export async function databaseFacts(c: Client): Promise<Omit<DatabaseFacts, 'pgDump'>> {
  const db = await c.query<{ owner: string; encoding: string; v: string }>(
    "SELECT pg_get_userbyid(datdba) AS owner, pg_encoding_to_char(encoding) AS encoding, current_setting('server_version') AS v FROM pg_database WHERE datname = current_database()",
  );
  const ext = await c.query<{ name: string; version: string }>('SELECT extname AS name, extversion AS version FROM pg_extension ORDER BY extname');
  const used = await c.query<{ use: string; role: string }>(ROLES_SQL);
  const pick = (use: string) => [...new Set(used.rows.filter((r) => r.use === use && !r.role.startsWith('pg_')).map((r) => r.role))].sort();
  const { owner, encoding, v } = db.rows[0]!;
  return { serverVersion: shortVersion(v), owner, encoding, extensions: ext.rows, roles: { owner: [...new Set([owner, ...pick('o')])].sort(), acl: pick('a'), policy: pick('r') } };
}

export async function globalsFacts(c: Client): Promise<Pick<GlobalsFacts, 'serverVersion' | 'roles' | 'tablespaces'>> {
  const r = await c.query<{ v: string; roles: string[]; tablespaces: string[] }>(
    `SELECT current_setting('server_version') AS v,
            ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1) AS roles,
            ARRAY(SELECT spcname::text FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY 1) AS tablespaces`,
  );
  const row = r.rows[0]!;
  return { serverVersion: shortVersion(row.v), roles: row.roles, tablespaces: row.tablespaces };
}

/** The destination server, as a restore's preflight needs to know it. */
export interface ServerFacts {
  serverVersion: string;
  /** Extension name -> versions the server can install. */
  available: Map<string, string[]>;
  preload: string[];
  roles: Set<string>;
}

export async function serverFacts(c: Client): Promise<ServerFacts> {
  const s = await c.query<{ v: string; preload: string; roles: string[] }>(
    "SELECT current_setting('server_version') AS v, current_setting('shared_preload_libraries') AS preload, ARRAY(SELECT rolname::text FROM pg_roles) AS roles",
  );
  const ext = await c.query<{ name: string; version: string }>('SELECT name, version FROM pg_available_extension_versions');
  const available = new Map<string, string[]>();
  for (const e of ext.rows) available.set(e.name, [...(available.get(e.name) ?? []), e.version]);
  const row = s.rows[0]!;
  return {
    serverVersion: shortVersion(row.v),
    available,
    preload: row.preload.split(',').map((x) => x.trim().replace(/^"|"$/g, '')).filter(Boolean),
    roles: new Set(row.roles),
  };
}

const strings = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);

/** Reads the facts back from a manifest's meta; fields a backup lacks (an older lifeboat) are undefined. */
export function readDatabaseFacts(meta: Record<string, unknown> | undefined): Partial<DatabaseFacts> {
  if (!meta) return {};
  const roles = meta.roles as Record<string, unknown> | undefined;
  const ext = Array.isArray(meta.extensions)
    ? (meta.extensions as unknown[]).filter((e): e is { name: string; version: string } => typeof (e as { name?: unknown })?.name === 'string' && typeof (e as { version?: unknown }).version === 'string')
    : undefined;
  return {
    serverVersion: typeof meta.serverVersion === 'string' ? meta.serverVersion : undefined,
    pgDump: typeof meta.pgDump === 'string' ? meta.pgDump : undefined,
    owner: typeof meta.owner === 'string' ? meta.owner : undefined,
    encoding: typeof meta.encoding === 'string' ? meta.encoding : undefined,
    extensions: ext,
    roles: roles ? { owner: strings(roles.owner) ?? [], acl: strings(roles.acl) ?? [], policy: strings(roles.policy) ?? [] } : undefined,
  };
}

export function readGlobalsRoles(meta: Record<string, unknown> | undefined): string[] {
  return strings(meta?.roles) ?? [];
}
