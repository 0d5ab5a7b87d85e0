import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { int, secretRef, str, type SecretRef, type TargetConfig } from '../../config';
import { validateName } from '../../domain/names';
import { LifeboatError } from '../../errors';

/** The item name (and `only`/`into` key) of a target's roles and tablespaces. */
export const GLOBALS = 'globals';

export interface PostgresSettings {
  host: string;
  port: number;
  user: string;
  password?: SecretRef;
  /** Databases to back up, each its own artifact. */
  databases: string[];
  /** Database the drill seeds its markers in (default: the first). */
  drillDatabase: string;
  /** Database used for DROP/CREATE DATABASE and the globals (default: postgres). */
  maintenanceDatabase: string;
  /** Folder with pg_dump/pg_restore/pg_dumpall/psql; default: the newest /usr/lib/postgresql/N/bin, else PATH. */
  binDir?: string;
  /** Back up the server's roles and tablespaces (`pg_dumpall --globals-only`) as item `globals` (default: true). */
  globals: boolean;
  /** Include the roles' password hashes in the globals (default: true; false adds --no-role-passwords). */
  globalsRolePasswords: boolean;
  /** pg_restore --no-owner: restored objects belong to the restoring user (default: false). */
  noOwner: boolean;
  /** pg_restore --no-acl: GRANTs are not restored (default: false). */
  noPrivileges: boolean;
  /** pg_restore --jobs N; above 1 the plaintext dump is spooled to a private file in `spoolDir` (default: 1, streamed). */
  jobs: number;
  /** Where a --jobs restore spools the plaintext dump (default: the OS temp folder). */
  spoolDir: string;
}

function bool(file: string, field: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new LifeboatError('ConfigError', `config ${file}: '${field}' must be true or false`);
  return v;
}

export function parsePostgresSettings(file: string, t: TargetConfig): PostgresSettings {
  const s = t.settings;
  const f = (k: string) => `targets.${t.name}.${k}`;
  if (!Array.isArray(s.databases) || s.databases.length === 0) {
    throw new LifeboatError('ConfigError', `config ${file}: '${f('databases')}' must list at least one database`);
  }
  const databases = s.databases.map((d, i) => validateName(`${f('databases')}[${i}]`, d));
  const drillDatabase = s.drillDatabase === undefined ? databases[0]! : validateName(f('drillDatabase'), s.drillDatabase);
  const globals = bool(file, f('globals'), s.globals, true);
  // `globals` names the roles' item in `only`/`into` and in drop; a database of that name would be ambiguous.
  if (globals && (databases.includes(GLOBALS) || drillDatabase === GLOBALS)) {
    throw new LifeboatError('ConfigError', `config ${file}: '${f('databases')}' lists a database named '${GLOBALS}', which is the name of the target's roles item; set '${f('globals')}: false' to back up that database without the roles`);
  }
  return {
    host: str(file, f('host'), s.host, '127.0.0.1'),
    port: int(file, f('port'), s.port, 5432),
    user: str(file, f('user'), s.user),
    password: secretRef(file, f('password'), s.password),
    databases,
    drillDatabase,
    maintenanceDatabase: str(file, f('maintenanceDatabase'), s.maintenanceDatabase, 'postgres'),
    binDir: s.binDir === undefined ? undefined : str(file, f('binDir'), s.binDir),
    globals,
    globalsRolePasswords: bool(file, f('globalsRolePasswords'), s.globalsRolePasswords, true),
    noOwner: bool(file, f('noOwner'), s.noOwner, false),
    noPrivileges: bool(file, f('noPrivileges'), s.noPrivileges, false),
    jobs: int(file, f('jobs'), s.jobs, 1),
    spoolDir: s.spoolDir === undefined ? tmpdir() : resolve(dirname(file), str(file, f('spoolDir'), s.spoolDir)),
  };
}

/** pg_dump must be at least as new as the server; Debian installs each major under its own folder. */
export function toolPath(settings: PostgresSettings, tool: string): string {
  if (settings.binDir) return join(settings.binDir, tool);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const majors = readdirSync(root)
      .filter((d) => /^\d+$/.test(d) && existsSync(join(root, d, 'bin', tool)))
      .sort((a, b) => Number(b) - Number(a));
    if (majors[0]) return join(root, majors[0], 'bin', tool);
  }
  return tool;
}
