import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { int, secretRef, str, type SecretRef, type TargetConfig } from '../../config';
import { validateName } from '../../domain/names';
import { LifeboatError } from '../../errors';

export interface PostgresSettings {
  host: string;
  port: number;
  user: string;
  password?: SecretRef;
  /** Databases to back up, each its own artifact. */
  databases: string[];
  /** Database the drill seeds its markers in (default: the first). */
  drillDatabase: string;
  /** Database used for DROP/CREATE DATABASE (default: postgres). */
  maintenanceDatabase: string;
  /** Folder with pg_dump/pg_restore; default: the newest /usr/lib/postgresql/N/bin, else PATH. */
  binDir?: string;
}

export function parsePostgresSettings(file: string, t: TargetConfig): PostgresSettings {
  const s = t.settings;
  const f = (k: string) => `targets.${t.name}.${k}`;
  if (!Array.isArray(s.databases) || s.databases.length === 0) {
    throw new LifeboatError('ConfigError', `config ${file}: '${f('databases')}' must list at least one database`);
  }
  const databases = s.databases.map((d, i) => validateName(`${f('databases')}[${i}]`, d));
  const drillDatabase = s.drillDatabase === undefined ? databases[0]! : validateName(f('drillDatabase'), s.drillDatabase);
  return {
    host: str(file, f('host'), s.host, '127.0.0.1'),
    port: int(file, f('port'), s.port, 5432),
    user: str(file, f('user'), s.user),
    password: secretRef(file, f('password'), s.password),
    databases,
    drillDatabase,
    maintenanceDatabase: str(file, f('maintenanceDatabase'), s.maintenanceDatabase, 'postgres'),
    binDir: s.binDir === undefined ? undefined : str(file, f('binDir'), s.binDir),
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
