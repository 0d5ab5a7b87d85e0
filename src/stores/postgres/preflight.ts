import type { DatabaseFacts, ServerFacts } from './facts';

/** The major version of a version string: `15.18` -> 15, `9.6.24` -> 9 (old scheme, close enough for a comparison with 10+). */
export const major = (v: string): number => parseInt(v, 10);

/** Extensions that Timescale and others restore only into the very same version. */
const EXACT_VERSION = new Set(['timescaledb']);
/** Extensions whose CREATE EXTENSION fails unless the library is in shared_preload_libraries. */
const PRELOAD = new Set(['timescaledb', 'pg_cron', 'citus']);

const CONTRIB = new Set(
  'adminpack amcheck autoinc bloom btree_gin btree_gist citext cube dblink dict_int dict_xsyn earthdistance file_fdw fuzzystrmatch hstore insert_username intagg intarray isn lo ltree moddatetime old_snapshot pageinspect pg_buffercache pg_freespacemap pg_prewarm pg_stat_statements pg_surgery pg_trgm pg_visibility pg_walinspect pgcrypto pgrowlocks pgstattuple postgres_fdw refint seg sslinfo tablefunc tcn tsm_system_rows tsm_system_time unaccent uuid-ossp xml2'.split(' '),
);

/** Where an extension usually comes from, for the error message (Debian/Ubuntu package names). */
export function packageHint(ext: string, serverMajor: number): string {
  const m = serverMajor;
  if (CONTRIB.has(ext)) return `it is one of PostgreSQL's contrib modules: install them for PostgreSQL ${m} on the database server (Debian/Ubuntu: postgresql-${m} or postgresql-contrib; RHEL: postgresql${m}-contrib)`;
  if (ext.startsWith('postgis') || ext === 'address_standardizer' || ext === 'address_standardizer_data_us') return `install PostGIS for PostgreSQL ${m} on the database server (Debian/Ubuntu: postgresql-${m}-postgis-3)`;
  const known: Record<string, string> = {
    timescaledb: `timescaledb-2-postgresql-${m} from Timescale's repository`,
    vector: `postgresql-${m}-pgvector`,
    pg_cron: `postgresql-${m}-cron`,
    pgrouting: `postgresql-${m}-pgrouting`,
    pg_partman: `postgresql-${m}-partman`,
    h3: `postgresql-${m}-h3`,
    pgaudit: `postgresql-${m}-pgaudit`,
    pg_repack: `postgresql-${m}-repack`,
    citus: `postgresql-${m}-citus from Citus' repository`,
  };
  const pkg = known[ext];
  return pkg ? `install it on the database server (Debian/Ubuntu: ${pkg})` : `install the package that provides extension '${ext}' for PostgreSQL ${m} on the database server`;
}

export interface RestoreOptions {
  noOwner: boolean;
  noPrivileges: boolean;
}

export interface Findings {
  /** Each stops the restore before anything is dropped. */
  problems: Array<{ type: 'ExtensionMissing' | 'RoleMissing' | 'ToolTooOld' | 'PermissionDenied'; message: string }>;
  warnings: string[];
}

/**
 * What stands between a dump and a successful restore on this server:
 * missing extensions, roles the dump names, a pg_restore too old for the dump.
 * `comingRoles` are roles the same restore creates first (its globals item).
 */
export function checkDatabase(database: string, facts: Partial<DatabaseFacts>, server: ServerFacts, opts: RestoreOptions & { pgRestore: string; pgRestorePath: string; comingRoles: ReadonlySet<string> }): Findings {
  const out: Findings = { problems: [], warnings: [] };
  const m = major(server.serverVersion);
  if (facts.pgDump && major(opts.pgRestore) < major(facts.pgDump)) {
    out.problems.push({
      type: 'ToolTooOld',
      message: `database '${database}' was dumped by pg_dump ${facts.pgDump}, which pg_restore ${opts.pgRestore} (${opts.pgRestorePath}) cannot read: install postgresql-client-${major(facts.pgDump)} (or newer) on the worker or set the target's binDir`,
    });
  }
  if (facts.serverVersion && major(facts.serverVersion) > m) {
    out.warnings.push(`database '${database}' comes from PostgreSQL ${facts.serverVersion} and is restored into the older PostgreSQL ${server.serverVersion}; PostgreSQL does not support this, objects may fail to restore`);
  }
  for (const e of facts.extensions ?? []) {
    const versions = server.available.get(e.name);
    if (!versions) {
      out.problems.push({ type: 'ExtensionMissing', message: `database '${database}' needs extension '${e.name}' (${e.version} at backup), which is not available on the server (PostgreSQL ${server.serverVersion}): ${packageHint(e.name, m)}, then restore again` });
    } else if (PRELOAD.has(e.name) && !server.preload.includes(e.name)) {
      out.problems.push({ type: 'ExtensionMissing', message: `database '${database}' needs extension '${e.name}', which is installed but not loaded: add '${e.name}' to shared_preload_libraries in postgresql.conf and restart the server, then restore again` });
    } else if (!versions.includes(e.version)) {
      if (EXACT_VERSION.has(e.name)) {
        out.problems.push({ type: 'ExtensionMissing', message: `database '${database}' needs extension '${e.name}' in version ${e.version} exactly (it restores only into the version it was dumped from); the server offers ${versions.join(', ')}: install ${e.name} ${e.version} on the database server, then restore again` });
      } else {
        out.warnings.push(`database '${database}' used extension '${e.name}' ${e.version}; the server offers ${versions.join(', ')}, and CREATE EXTENSION will install its default version`);
      }
    }
  }
  if (facts.roles) {
    const needed = [...(opts.noOwner ? [] : facts.roles.owner), ...(opts.noPrivileges ? [] : facts.roles.acl), ...facts.roles.policy];
    const missing = [...new Set(needed)].filter((r) => !server.roles.has(r) && !opts.comingRoles.has(r)).sort();
    if (missing.length) {
      out.problems.push({
        type: 'RoleMissing',
        message: `database '${database}' names role${missing.length > 1 ? 's' : ''} ${missing.map((r) => `'${r}'`).join(', ')} (as owner, in GRANTs or in policies), which the server does not have: restore the target's globals first (they come first when the whole backup is restored), create the role${missing.length > 1 ? 's' : ''}, or set noOwner/noPrivileges on the target`,
      });
    }
  }
  return out;
}
