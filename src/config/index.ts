import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { DRILLS_DIR } from '../domain/layout';
import { DEFAULT_RETENTION } from '../domain/retention';
import { DEFAULT_SCHEDULES, ID_PREFIX, isCron, isTimezone } from '../domain/schedules';
import { LifeboatError } from '../errors';
import { bool, configError, httpUrl, name, oneOf, path, port, secretRef, strict, suggest, text, wholeNumber, type SchemaContext, type SecretRef } from './fields';
import { checksSchema, hooksSchema, type TargetChecks, type TargetHooks } from './hooks';
import { DEFAULT_COMPRESSION } from '../domain/compression';
import type { Config, KindSettings, KindShape, TargetConfig } from './types';

/**
 * lifeboat.yaml, declared once (zod): the types (./types.ts), the validation with
 * "did you mean" for unknown keys, the editor JSON Schema (`lifeboat config
 * schema`) and the reference in docs/config.md all come from these schemas.
 * Secrets are never inlined: a secret field is a reference, `{ file: path }`
 * (preferred) or `{ env: NAME }`, resolved only inside the process that needs it.
 */
export type { SecretRef, SchemaContext };

export type * from './types';

// ---------------------------------------------------------------- the schema

const taskQueue = () => text().regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$/, "must be letters, digits, '.', '_', ':', '/' or '-'");

const temporalSchema = () =>
  strict({
    address: text().default('127.0.0.1:7233').meta({ description: 'Temporal frontend host:port' }),
    namespace: text().default('default'),
    taskQueue: taskQueue().default('lifeboat').meta({ description: "the default worker's task queue" }),
    uiUrl: httpUrl().optional().meta({ description: 'Web UI base URL, for links in the CLI output' }),
    searchAttributes: bool().default(true).meta({ description: "tag runs with lifeboat's search attributes (registered on the server)" }),
    heartbeatTimeoutSeconds: wholeNumber(5, 600)
      .default(30)
      .meta({ description: 'a running activity whose worker died is retried on another worker after this many seconds without a heartbeat (default 30)' }),
  });

const s3Fields = (c: SchemaContext) => ({
  endpoint: httpUrl().optional().meta({ description: 'S3 endpoint URL; omit for AWS' }),
  region: text().default('us-east-1'),
  bucket: text(),
  forcePathStyle: bool().optional().meta({ description: 'path-style URLs (default: true when endpoint is set)' }),
  accessKeyId: secretRef(c).optional(),
  secretAccessKey: secretRef(c).optional(),
});

const prefixPart = () => name();

const repositorySchema = (c: SchemaContext) =>
  z.discriminatedUnion(
    'kind',
    [
      strict({
        kind: z.literal('s3'),
        ...s3Fields(c),
        prefix: text()
          .default('lifeboat')
          .transform((p) => p.replace(/^\/+|\/+$/g, ''))
          .pipe(z.string().refine((p) => p.split('/').every((s) => prefixPart().safeParse(s).success), "must be folder names (letters, digits, '.', '_', '-') separated by '/'")),
        partSizeMB: wholeNumber(5, 5120).default(16),
        queueSize: wholeNumber(1, 64).default(4),
        objectLock: strict({ mode: oneOf(['GOVERNANCE', 'COMPLIANCE']), days: wholeNumber(1, 36500) }).optional(),
      }),
      strict({ kind: z.literal('local'), path: path(c) }),
    ],
    { error: (iss) => (iss.code === 'invalid_union' ? `kind must be 's3' or 'local'` : undefined) },
  );

const encryptionSchema = (c: SchemaContext) =>
  z.union(
    [
      z.literal('none'),
      strict({
        recipients: z.array(text().regex(/^age1[0-9a-z]+$/, 'must be an age recipient (age1…)')).min(1, 'must list at least one age recipient (age1…)'),
        identityFile: path(c).optional().meta({ description: 'age identity file: only restore and verify read it' }),
      }),
    ],
    { error: (iss) => (iss.input === undefined ? "is required: give age recipients (see 'lifeboat keygen'), or write 'encryption: none' to store backups unencrypted" : "must be { recipients: [age1…], identityFile } or 'none'") },
  );

const signingSchema = (c: SchemaContext) =>
  strict({
    keyFile: path(c).optional().meta({ description: "Ed25519 private key (PEM, mode 600) that signs manifests; backup workers only ('lifeboat keygen --signing')" }),
    publicKeys: z
      .array(text().regex(/^lifeboat-ed25519:[A-Za-z0-9+/=]{40,64}$/, "must be a public key printed by 'lifeboat keygen --signing' (lifeboat-ed25519:…)"))
      .default([])
      .meta({ description: 'public keys whose manifest signatures restore and verify accept' }),
  });

const retentionSchema = () =>
  strict({
    keepLast: wholeNumber(0).default(DEFAULT_RETENTION.keepLast),
    daily: wholeNumber(0).default(DEFAULT_RETENTION.daily),
    weekly: wholeNumber(0).default(DEFAULT_RETENTION.weekly),
    monthly: wholeNumber(0).default(DEFAULT_RETENTION.monthly),
  });

const cron = () =>
  z.union([z.literal(false), z.literal('off'), text()]).transform((v, ctx) => {
    if (v === false || v === 'off') return false as const;
    if (!isCron(v)) {
      ctx.addIssue({ code: 'custom', message: 'must be a cron expression like "0 2 * * *" (minute hour day-of-month month day-of-week), or false for none' });
      return z.NEVER;
    }
    return v.trim().replace(/\s+/g, ' ');
  });

const schedulesSchema = () =>
  strict({
    idPrefix: text().regex(ID_PREFIX, "must be 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit").default(DEFAULT_SCHEDULES.idPrefix),
    timezone: text().refine(isTimezone, 'must be an IANA time zone name like UTC or Europe/Berlin').default(DEFAULT_SCHEDULES.timezone),
    enabled: bool().default(true),
    backups: z.record(z.string(), cron()).default({}).meta({ description: 'per-target cron overrides; false: no backup schedule for that target' }),
    drill: cron().default(DEFAULT_SCHEDULES.drill as string),
    drillMode: oneOf(['scratch', 'in-place']).default('scratch'),
    prune: cron().default(DEFAULT_SCHEDULES.prune as string),
  });

const metricsSchema = () =>
  strict({
    port: port().meta({ description: "port of the worker's Prometheus endpoint (GET /metrics)" }),
    host: text().default('127.0.0.1').meta({ description: 'address to listen on; 0.0.0.0 to let another host scrape it' }),
    refreshSeconds: wholeNumber(5, 86400).default(60).meta({ description: 'how often the per-target facts are read from the repository again' }),
  });

/** The fields every target has, whatever its kind. */
export const commonTargetShape = (c: SchemaContext) => ({
  kind: text().meta({ description: 'postgres, clickhouse, bucket, redis, influxdb or vault' }),
  hooks: hooksSchema(c).optional(),
  checks: checksSchema().optional(),
  taskQueue: taskQueue().optional().meta({ description: 'task queue of a worker beside this store (lifeboat worker --targets NAME); default: temporal.taskQueue' }),
});

/** The top level; `targets` is checked per kind by parseConfig. */
export const configSchema = (c: SchemaContext) =>
  strict({
    temporal: temporalSchema().prefault({}),
    repository: repositorySchema(c),
    encryption: encryptionSchema(c),
    signing: signingSchema(c).optional(),
    retention: retentionSchema().default(DEFAULT_RETENTION),
    compression: z
      .union([z.literal('none'), strict({ algorithm: oneOf(['zstd', 'none']).default('zstd'), level: wholeNumber(1, 19).default(DEFAULT_COMPRESSION.level) })])
      .default(DEFAULT_COMPRESSION)
      .meta({ description: "artifacts are compressed with zstd before they are encrypted (default level 3); 'none' stores them as the store wrote them" }),
    targets: z.record(z.string(), z.unknown(), { error: 'must map target names to their settings' }),
    schedules: schedulesSchema().optional(),
    metrics: metricsSchema().optional().meta({ description: "the worker's Prometheus metrics (docs/metrics.md); off when absent" }),
  });

/** One target, validated against its kind's settings. */
export function targetSchema(c: SchemaContext, kind: KindShape) {
  return strict({ ...commonTargetShape(c), ...kind(c) });
}

// ---------------------------------------------------------------- parsing

function bad(file: string, field: string, why: string): never {
  throw new LifeboatError('ConfigError', `config ${file}: '${field}' ${why}`);
}

/**
 * Parses one target's settings with its kind's schema: the typed settings,
 * defaults filled in. Stores call this on `TargetConfig.settings`.
 */
export function parseTargetSettings<S extends KindShape>(file: string, t: Pick<TargetConfig, 'name' | 'settings'>, kind: S, c = contextOf(file)) {
  const r = targetSchema(c, kind).safeParse(t.settings);
  if (!r.success) throw configError(file, r.error, ['targets', t.name]);
  return r.data as unknown as z.output<z.ZodObject<ReturnType<S>>>;
}

function contextOf(file: string): SchemaContext {
  return { dir: resolve(file, '..'), secretFiles: [] };
}

/** Parses and validates lifeboat.yaml's text; `kinds` are the known kinds' settings (src/stores). */
export function parseConfigDocument(raw: unknown, file: string, kinds: Record<string, KindSettings>): Config {
  const c = contextOf(file);
  // Every problem at once: the top level, then each target, so one run of `config check` lists them all.
  const problems: string[] = [];
  const collect = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof LifeboatError)) throw err;
      problems.push(err.message.replace(/^config [^:]+: /, '').replace(/^\n {2}- /, '').split('\n  - ').join('\n'));
    }
  };
  const top = configSchema(c).safeParse(raw ?? {});
  if (!top.success) collect(() => { throw configError(file, top.error); });
  const rawTargets = (raw as { targets?: unknown } | null)?.targets;
  const targets = new Map<string, TargetConfig>();
  if (typeof rawTargets === 'object' && rawTargets !== null && !Array.isArray(rawTargets)) {
    for (const [targetName, tv] of Object.entries(rawTargets)) collect(() => targets.set(targetName, parseTarget(file, c, kinds, targetName, tv)));
  }
  if (top.success && targets.size === 0 && problems.length === 0) problems.push(`'targets' must name at least one target`);
  const schedules = top.success ? top.data.schedules : undefined;
  if (schedules) {
    const unknown = Object.keys(schedules.backups).filter((t) => !targets.has(t));
    if (unknown.length) problems.push(`'schedules.backups.${unknown[0]}' names no configured target; targets: ${[...targets.keys()].join(', ')}`);
  }
  if (problems.length || !top.success) {
    const lines = problems.flatMap((p) => p.split('\n'));
    throw new LifeboatError('ConfigError', `config ${file}: ${lines.length === 1 ? lines[0] : `\n  - ${lines.join('\n  - ')}`}`);
  }
  const doc = top.data;
  const r = doc.repository;
  return {
    file,
    retention: doc.retention,
    temporal: doc.temporal,
    repository: r.kind === 'local' ? r : { ...r, forcePathStyle: r.forcePathStyle ?? Boolean(r.endpoint) },
    encryption: doc.encryption === 'none' ? null : doc.encryption,
    ...(doc.signing ? { signing: doc.signing } : {}),
    compression: doc.compression === 'none' ? { algorithm: 'none', level: 0 } : doc.compression,
    targets,
    schedules: schedules ?? { ...DEFAULT_SCHEDULES, backups: {} },
    secretFiles: [...new Set(c.secretFiles)],
    ...(doc.metrics ? { metrics: doc.metrics } : {}),
  };
}

function parseTarget(file: string, c: SchemaContext, kinds: Record<string, KindSettings>, targetName: string, tv: unknown): TargetConfig {
  const field = `targets.${targetName}`;
  if (!name().safeParse(targetName).success) {
    bad(file, field, `is not a valid target name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'`);
  }
  if (targetName === DRILLS_DIR) bad(file, field, `is a reserved name (the repository keeps drill records under '${DRILLS_DIR}/'); rename the target`);
  if (typeof tv !== 'object' || tv === null || Array.isArray(tv)) bad(file, field, 'must be a mapping of settings with a kind');
  const settings = tv as Record<string, unknown>;
  const kind = settings.kind;
  if (typeof kind !== 'string' || !(kind in kinds)) {
    const s = typeof kind === 'string' ? suggest(kind, Object.keys(kinds)) : undefined;
    bad(file, `${field}.kind`, `${kind === undefined ? 'is required' : `'${String(kind)}' is not a kind this lifeboat knows${s ? ` (did you mean '${s}'?)` : ''}`}; known kinds: ${Object.keys(kinds).join(', ')}`);
  }
  const parsed = parseTargetSettings(file, { name: targetName, settings }, kinds[kind]!.settings, c) as { hooks?: TargetHooks; checks?: TargetChecks; taskQueue?: string };
  kinds[kind]!.parse?.(file, { name: targetName, settings });
  return { name: targetName, kind, settings, hooks: parsed.hooks, checks: parsed.checks, ...(parsed.taskQueue ? { taskQueue: parsed.taskQueue } : {}) };
}

/** The config file: --config, else $LIFEBOAT_CONFIG, else ./lifeboat.yaml. */
export function configPath(explicit?: string): string {
  return resolve(explicit ?? process.env.LIFEBOAT_CONFIG ?? 'lifeboat.yaml');
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

export function targetOf(config: Config, targetName: string): TargetConfig {
  const t = config.targets.get(targetName);
  if (!t) {
    const s = suggest(targetName, [...config.targets.keys()]);
    throw new LifeboatError('ConfigError', `target '${targetName}' is not in ${config.file}${s ? ` (did you mean '${s}'?)` : ''}; configured targets: ${[...config.targets.keys()].join(', ')}`);
  }
  return t;
}

/** The task queue whose worker runs a target's activities. */
export function taskQueueOf(config: Config, targetName: string): string {
  return targetOf(config, targetName).taskQueue ?? config.temporal.taskQueue;
}
