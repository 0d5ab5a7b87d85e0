import { z } from 'zod';
import { parseTargetSettings, type SecretRef, type TargetConfig } from '../../config';
import { bool, name, oneOf, secretRef, strict, text, wholeNumber, type SchemaContext } from '../../config/fields';
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

/**
 * A URL without credentials, query or fragment: credentials in a URL end up in
 * logs (ours and the server's), so they must come from a secret reference.
 */
const plainUrl = () =>
  text()
    .refine((v) => URL.canParse(v), 'is not a URL')
    .refine((v) => /^https?:$/.test(new URL(v).protocol), 'must start with http:// or https://')
    .refine((v) => !new URL(v).username && !new URL(v).password, 'must not contain credentials: use the user/password (or accessKeyId/secretAccessKey) settings with a { file } or { env } reference')
    .refine((v) => !new URL(v).search && !new URL(v).hash, 'must not have a query string or fragment (settings and credentials never go in the URL)')
    .transform((v) => v.replace(/\/+$/, ''));

const nativeBackup = (c: SchemaContext) =>
  z.union([
    plainUrl(),
    strict({
      url: plainUrl(),
      accessKeyId: secretRef(c).optional(),
      secretAccessKey: secretRef(c).optional(),
      incremental: bool().default(false),
      fullEvery: wholeNumber(1, 1000).default(7),
    }).refine((o) => !o.accessKeyId === !o.secretAccessKey, 'needs both accessKeyId and secretAccessKey, or neither (the server then uses its own S3 credentials)'),
  ]);

/** A clickhouse target's settings (docs/clickhouse.md). */
export const clickhouseSettings = (c: SchemaContext) => ({
  url: plainUrl()
    .refine((v) => ['/', ''].includes(new URL(v).pathname), 'must be scheme://host:port, without a path')
    .default('http://127.0.0.1:8123')
    .meta({ description: 'HTTP interface: scheme, host and port only' }),
  user: text().default('default'),
  password: secretRef(c).optional(),
  databases: z.array(name()).min(1, 'must list at least one database'),
  drillDatabase: name().optional().meta({ description: 'database the drill seeds its markers in (default: the first)' }),
  strategy: oneOf(['auto', 'native', 'logical']).default('auto'),
  nativeBackupUrl: nativeBackup(c).optional().meta({ description: 'S3 folder for BACKUP … TO S3 (22.8+): a URL, or { url, accessKeyId, secretAccessKey, incremental, fullEvery }' }),
});

export function parseClickhouseSettings(file: string, t: Pick<TargetConfig, 'name' | 'settings'>): ClickhouseSettings {
  const s = parseTargetSettings(file, t, clickhouseSettings);
  const n = s.nativeBackupUrl;
  const native: NativeBackupSettings | undefined = n === undefined ? undefined : typeof n === 'string' ? { url: n, incremental: false, fullEvery: 7 } : n;
  if (s.strategy === 'native' && !native) {
    throw new LifeboatError('ConfigError', `config ${file}: 'targets.${t.name}.nativeBackupUrl' is required with strategy 'native': the S3 folder BACKUP writes to`);
  }
  return { url: s.url, user: s.user, password: s.password, databases: s.databases, drillDatabase: s.drillDatabase ?? s.databases[0]!, strategy: s.strategy, nativeBackup: native };
}
