import { int, secretRef, str, type SecretRef, type TargetConfig } from '../../config';
import { validateName } from '../../domain/names';
import { LifeboatError } from '../../errors';

export type Strategy = 'auto' | 'native' | 'logical';

/** Where the native strategy's `BACKUP … TO S3(…)` writes: a folder URL and, optionally, keys. */
export interface NativeBackupSettings {
  /** `https://bucket.s3.region.amazonaws.com/clickhouse-backups` (no credentials, no query). */
  url: string;
  /** Omit both to let the server use its own S3 credentials (config.xml or the environment). */
  accessKeyId?: SecretRef;
  secretAccessKey?: SecretRef;
  /** Take incremental backups on top of the previous one (`SETTINGS base_backup = …`). */
  incremental: boolean;
  /** With `incremental`, every `fullEvery`-th backup of a database is a full one again. */
  fullEvery: number;
}

export interface ClickhouseSettings {
  /** HTTP interface, e.g. `http://127.0.0.1:8123`: scheme, host and port only. */
  url: string;
  user: string;
  password?: SecretRef;
  /** Databases to back up. */
  databases: string[];
  /** Database the drill seeds its markers in (default: the first). */
  drillDatabase: string;
  strategy: Strategy;
  nativeBackup?: NativeBackupSettings;
}

function bad(file: string, field: string, why: string): never {
  throw new LifeboatError('ConfigError', `config ${file}: '${field}' ${why}`);
}

/**
 * A URL without credentials, query or fragment: credentials in a URL end up in
 * logs (ours and the server's), so they must come from a secret reference.
 */
function plainUrl(file: string, field: string, v: unknown, protocols: string[], fallback?: string): string {
  const text = str(file, field, v, fallback);
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    bad(file, field, `is not a URL: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (!protocols.includes(u.protocol)) bad(file, field, `must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
  if (u.username || u.password) bad(file, field, 'must not contain credentials: use the user/password (or accessKeyId/secretAccessKey) settings with a { file } or { env } reference');
  if (u.search || u.hash) bad(file, field, 'must not have a query string or fragment (settings and credentials never go in the URL)');
  return text.replace(/\/+$/, '');
}

function parseNative(file: string, f: (k: string) => string, v: unknown): NativeBackupSettings | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return { url: plainUrl(file, f('nativeBackupUrl'), v, ['http:', 'https:']), incremental: false, fullEvery: 7 };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(file, f('nativeBackupUrl'), 'must be a URL or { url, accessKeyId, secretAccessKey }');
  const o = v as Record<string, unknown>;
  const accessKeyId = secretRef(file, f('nativeBackupUrl.accessKeyId'), o.accessKeyId);
  const secretAccessKey = secretRef(file, f('nativeBackupUrl.secretAccessKey'), o.secretAccessKey);
  if (!accessKeyId !== !secretAccessKey) bad(file, f('nativeBackupUrl'), 'needs both accessKeyId and secretAccessKey, or neither (the server then uses its own S3 credentials)');
  if (o.incremental !== undefined && typeof o.incremental !== 'boolean') bad(file, f('nativeBackupUrl.incremental'), 'must be true or false');
  return {
    url: plainUrl(file, f('nativeBackupUrl.url'), o.url, ['http:', 'https:']),
    accessKeyId,
    secretAccessKey,
    incremental: o.incremental === true,
    fullEvery: int(file, f('nativeBackupUrl.fullEvery'), o.fullEvery, 7),
  };
}

export function parseClickhouseSettings(file: string, t: TargetConfig): ClickhouseSettings {
  const s = t.settings;
  const f = (k: string) => `targets.${t.name}.${k}`;
  if (!Array.isArray(s.databases) || s.databases.length === 0) bad(file, f('databases'), 'must list at least one database');
  const databases = s.databases.map((d, i) => validateName(`${f('databases')}[${i}]`, d));
  const drillDatabase = s.drillDatabase === undefined ? databases[0]! : validateName(f('drillDatabase'), s.drillDatabase);
  const strategy = s.strategy === undefined ? 'auto' : s.strategy;
  if (strategy !== 'auto' && strategy !== 'native' && strategy !== 'logical') bad(file, f('strategy'), "must be 'auto', 'native' or 'logical'");
  const nativeBackup = parseNative(file, f, s.nativeBackupUrl);
  if (strategy === 'native' && !nativeBackup) bad(file, f('nativeBackupUrl'), "is required with strategy 'native': the S3 folder BACKUP writes to");
  const url = plainUrl(file, f('url'), s.url, ['http:', 'https:'], 'http://127.0.0.1:8123');
  if (new URL(url).pathname !== '/' && new URL(url).pathname !== '') bad(file, f('url'), 'must be scheme://host:port, without a path');
  return {
    url,
    user: str(file, f('user'), s.user, 'default'),
    password: secretRef(file, f('password'), s.password),
    databases,
    drillDatabase,
    strategy,
    nativeBackup,
  };
}
