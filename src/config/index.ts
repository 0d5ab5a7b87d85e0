import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { LifeboatError } from '../errors';
import { DRILLS_DIR } from '../domain/layout';
import { parseChecks, parseHooks, type TargetChecks, type TargetHooks } from './hooks';
import { validateName } from '../domain/names';
import { DEFAULT_RETENTION, type RetentionPolicy } from '../domain/retention';
import { parseScheduleSettings, type ScheduleSettings } from '../domain/schedules';

/**
 * lifeboat.yaml, loaded once and validated. Secrets are never inlined: a
 * secret field is a reference, `{ file: path }` (preferred) or `{ env: NAME }`,
 * resolved only inside the worker or CLI process that needs it.
 */
export type SecretRef = { file: string } | { env: string };

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  uiUrl?: string;
  /** Tag runs with lifeboat's search attributes (the server must have them registered). */
  searchAttributes: boolean;
}

/** Where an S3 bucket or prefix is and how to reach it: the repository's and a bucket target's. */
export interface S3Location {
  /** S3 endpoint URL; omitted for AWS. */
  endpoint?: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  accessKeyId?: SecretRef;
  secretAccessKey?: SecretRef;
}

export interface S3RepositoryConfig extends S3Location {
  kind: 's3';
  partSizeMB: number;
  queueSize: number;
  /** Write artifacts with an Object Lock retention (the bucket must have Object Lock enabled). */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

export interface LocalRepositoryConfig {
  kind: 'local';
  path: string;
}

export type RepositoryConfig = S3RepositoryConfig | LocalRepositoryConfig;

export interface EncryptionConfig {
  /** Public age recipients: all a backup needs. */
  recipients: string[];
  /** age identity file: only restore and verify read it. */
  identityFile?: string;
}

/** A target's raw settings; its store parses the kind-specific fields. */
export interface TargetConfig {
  name: string;
  kind: string;
  settings: Record<string, unknown>;
  /** Writer hooks and post-restore checks; none when omitted. */
  hooks?: TargetHooks;
  checks?: TargetChecks;
}

export interface Config {
  file: string;
  retention: RetentionPolicy;
  temporal: TemporalConfig;
  repository: RepositoryConfig;
  /** null when the config says `encryption: none` explicitly. */
  encryption: EncryptionConfig | null;
  targets: Map<string, TargetConfig>;
  /** The `schedules:` section (`lifeboat schedule apply`); defaults when omitted. */
  schedules?: ScheduleSettings;
}

function bad(file: string, field: string, why: string): never {
  throw new LifeboatError('ConfigError', `config ${file}: '${field}' ${why}`);
}

type Obj = Record<string, unknown>;

function obj(file: string, field: string, v: unknown): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(file, field, 'must be a mapping');
  return v as Obj;
}

export function str(file: string, field: string, v: unknown, fallback?: string): string {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'string' || v === '') bad(file, field, 'must be a non-empty string');
  return v;
}

export function int(file: string, field: string, v: unknown, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(file, field, 'must be a positive whole number');
  return v;
}

export function secretRef(file: string, field: string, v: unknown): SecretRef | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') {
    bad(file, field, "must reference the secret, not contain it: write { file: /path/to/secret } or { env: VAR_NAME }");
  }
  const o = obj(file, field, v);
  if (typeof o.file === 'string') return { file: resolve(dirname(file), o.file) };
  if (typeof o.env === 'string') return { env: o.env };
  bad(file, field, 'must be { file: PATH } or { env: NAME }');
}

export async function resolveSecret(ref: SecretRef, what: string): Promise<string> {
  if ('env' in ref) {
    const v = process.env[ref.env];
    if (!v) throw new LifeboatError('ConfigError', `${what}: environment variable ${ref.env} is not set`);
    return v;
  }
  try {
    return (await readFile(ref.file, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new LifeboatError('ConfigError', `${what}: cannot read secret file ${ref.file} (${(err as NodeJS.ErrnoException).code ?? err}); check the path and its permissions`);
  }
}

function parseRepository(file: string, v: unknown): RepositoryConfig {
  const r = obj(file, 'repository', v);
  if (r.kind === 'local') return { kind: 'local', path: resolve(dirname(file), str(file, 'repository.path', r.path)) };
  if (r.kind !== 's3') bad(file, 'repository.kind', "must be 's3' or 'local'");
  const prefix = str(file, 'repository.prefix', r.prefix, 'lifeboat').replace(/^\/+|\/+$/g, '');
  prefix.split('/').forEach((p) => validateName('repository.prefix part', p));
  return {
    kind: 's3',
    endpoint: r.endpoint === undefined ? undefined : str(file, 'repository.endpoint', r.endpoint),
    region: str(file, 'repository.region', r.region, 'us-east-1'),
    bucket: str(file, 'repository.bucket', r.bucket),
    prefix,
    forcePathStyle: r.forcePathStyle === undefined ? Boolean(r.endpoint) : r.forcePathStyle === true,
    accessKeyId: secretRef(file, 'repository.accessKeyId', r.accessKeyId),
    secretAccessKey: secretRef(file, 'repository.secretAccessKey', r.secretAccessKey),
    partSizeMB: int(file, 'repository.partSizeMB', r.partSizeMB, 16),
    queueSize: int(file, 'repository.queueSize', r.queueSize, 4),
    objectLock: parseObjectLock(file, r.objectLock),
  };
}

function parseObjectLock(file: string, v: unknown): S3RepositoryConfig['objectLock'] {
  if (v === undefined) return undefined;
  const o = obj(file, 'repository.objectLock', v);
  if (o.mode !== 'GOVERNANCE' && o.mode !== 'COMPLIANCE') bad(file, 'repository.objectLock.mode', "must be 'GOVERNANCE' or 'COMPLIANCE'");
  return { mode: o.mode, days: int(file, 'repository.objectLock.days', o.days) };
}

function whole(file: string, field: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) bad(file, field, 'must be a whole number, 0 or more');
  return v;
}

function parseRetention(file: string, v: unknown): RetentionPolicy {
  const r = obj(file, 'retention', v ?? {});
  const d = DEFAULT_RETENTION;
  return {
    keepLast: whole(file, 'retention.keepLast', r.keepLast, d.keepLast),
    daily: whole(file, 'retention.daily', r.daily, d.daily),
    weekly: whole(file, 'retention.weekly', r.weekly, d.weekly),
    monthly: whole(file, 'retention.monthly', r.monthly, d.monthly),
  };
}

function parseEncryption(file: string, v: unknown): EncryptionConfig | null {
  if (v === 'none') return null;
  if (v === undefined) bad(file, 'encryption', "is required: give age recipients (see 'lifeboat keygen'), or write 'encryption: none' to store backups unencrypted");
  const e = obj(file, 'encryption', v);
  if (!Array.isArray(e.recipients) || e.recipients.length === 0) bad(file, 'encryption.recipients', 'must list at least one age recipient (age1…)');
  const recipients = e.recipients.map((r, i) => str(file, `encryption.recipients[${i}]`, r));
  const identityFile = e.identityFile === undefined ? undefined : resolve(dirname(file), str(file, 'encryption.identityFile', e.identityFile));
  return { recipients, identityFile };
}

export function parseConfig(text: string, file: string): Config {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new LifeboatError('ConfigError', `config ${file} is not valid YAML: ${(err as Error).message}`);
  }
  const c = obj(file, '(top level)', raw);
  const t = obj(file, 'temporal', c.temporal ?? {});
  const temporal: TemporalConfig = {
    address: str(file, 'temporal.address', t.address, '127.0.0.1:7233'),
    namespace: str(file, 'temporal.namespace', t.namespace, 'default'),
    taskQueue: str(file, 'temporal.taskQueue', t.taskQueue, 'lifeboat'),
    uiUrl: t.uiUrl === undefined ? undefined : str(file, 'temporal.uiUrl', t.uiUrl).replace(/\/+$/, ''),
    searchAttributes: t.searchAttributes !== false,
  };
  const targets = new Map<string, TargetConfig>();
  for (const [name, tv] of Object.entries(obj(file, 'targets', c.targets))) {
    validateName('target', name);
    if (name === DRILLS_DIR) bad(file, `targets.${name}`, `is a reserved name (the repository keeps drill records under '${DRILLS_DIR}/'); rename the target`);
    const settings = obj(file, `targets.${name}`, tv);
    targets.set(name, {
      name,
      kind: str(file, `targets.${name}.kind`, settings.kind),
      settings,
      hooks: parseHooks(file, name, settings.hooks),
      checks: parseChecks(file, name, settings.checks),
    });
  }
  if (targets.size === 0) bad(file, 'targets', 'must name at least one target');
  return {
    file,
    retention: parseRetention(file, c.retention),
    temporal,
    repository: parseRepository(file, c.repository),
    encryption: parseEncryption(file, c.encryption),
    targets,
    schedules: parseScheduleSettings(c.schedules, [...targets.keys()], (field, why) => bad(file, field, why)),
  };
}

/** The config file: --config, else $LIFEBOAT_CONFIG, else ./lifeboat.yaml. */
export function configPath(explicit?: string): string {
  return resolve(explicit ?? process.env.LIFEBOAT_CONFIG ?? 'lifeboat.yaml');
}

export function loadConfig(explicit?: string): Config {
  const file = configPath(explicit);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LifeboatError(
      'ConfigError',
      `cannot read config ${file} (${(err as NodeJS.ErrnoException).code ?? err}); pass --config FILE or set LIFEBOAT_CONFIG (the local stack writes one: scripts/stack.sh env)`,
    );
  }
  return parseConfig(text, file);
}

export function targetOf(config: Config, name: string): TargetConfig {
  const t = config.targets.get(name);
  if (!t) {
    throw new LifeboatError('ConfigError', `target '${name}' is not in ${config.file}; configured targets: ${[...config.targets.keys()].join(', ')}`);
  }
  return t;
}
