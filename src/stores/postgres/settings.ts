import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseTargetSettings, type TargetConfig } from '../../config';
import { bool, name, path, port, secretRef, text, wholeNumber, type SchemaContext } from '../../config/fields';
import { LifeboatError } from '../../errors';
import { pitrSettings } from './pitr/settings';

/** The item name (and `only`/`into` key) of a target's roles and tablespaces. */
export const GLOBALS = 'globals';

/** A postgres target's settings (docs/postgres.md). */
export const postgresSettings = (c: SchemaContext) => ({
  host: text().default('127.0.0.1'),
  port: port().default(5432),
  user: text(),
  password: secretRef(c).optional(),
  databases: z.array(name()).min(1, 'must list at least one database').meta({ description: 'databases to back up, each its own artifact' }),
  drillDatabase: name().optional().meta({ description: 'database the drill seeds its markers in (default: the first)' }),
  maintenanceDatabase: text().default('postgres').meta({ description: 'database used for DROP/CREATE DATABASE and the globals' }),
  binDir: path(c).optional().meta({ description: 'folder with pg_dump/pg_restore/pg_dumpall; default: the newest /usr/lib/postgresql/N/bin, else PATH' }),
  globals: bool().default(true).meta({ description: "back up the server's roles and tablespaces (pg_dumpall --globals-only) as item 'globals'" }),
  globalsRolePasswords: bool().default(true).meta({ description: "include the roles' password hashes in the globals" }),
  noOwner: bool().default(false).meta({ description: 'pg_restore --no-owner: restored objects belong to the restoring user, or to `owner`' }),
  noPrivileges: bool().default(false).meta({ description: 'pg_restore --no-acl: GRANTs are not restored' }),
  owner: name().optional().meta({ description: 'role that owns the restored databases and every object in them (pg_restore --no-owner, then ALTER … OWNER TO each object); restore --owner overrides it' }),
  jobs: wholeNumber(1, 64).default(1).meta({ description: 'pg_restore --jobs N; above 1 the plaintext dump is spooled to a private file in spoolDir' }),
  spoolDir: path(c).optional().meta({ description: 'where a --jobs restore spools the plaintext dump (default: the OS temp folder)' }),
  pitr: pitrSettings(c).optional().meta({ description: 'point-in-time recovery with pgBackRest, beside the logical dumps (docs/pitr.md)' }),
});

export type PostgresSettings = Omit<z.output<z.ZodObject<ReturnType<typeof postgresSettings>>>, 'drillDatabase' | 'spoolDir'> & {
  drillDatabase: string;
  spoolDir: string;
};

export function parsePostgresSettings(file: string, t: Pick<TargetConfig, 'name' | 'settings'>): PostgresSettings {
  const s = parseTargetSettings(file, t, postgresSettings);
  const drillDatabase = s.drillDatabase ?? s.databases[0]!;
  // `globals` names the roles' item in `only`/`into` and in drop; a database of that name would be ambiguous.
  if (s.globals && (s.databases.includes(GLOBALS) || drillDatabase === GLOBALS)) {
    throw new LifeboatError(
      'ConfigError',
      `config ${file}: 'targets.${t.name}.databases' lists a database named '${GLOBALS}', which is the name of the target's roles item; set 'targets.${t.name}.globals: false' to back up that database without the roles`,
    );
  }
  return { ...s, drillDatabase, spoolDir: s.spoolDir ?? tmpdir() };
}

/** pg_dump must be at least as new as the server; Debian installs each major under its own folder. */
export function toolPath(settings: Pick<PostgresSettings, 'binDir'>, tool: string): string {
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
