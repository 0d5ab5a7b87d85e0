import { randomBytes } from 'node:crypto';
import { chown, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { resolveSecret, type RepositoryConfig } from '../../../config';
import type { RetentionPolicy } from '../../../domain/retention';
import { LifeboatError } from '../../../errors';
import type { PostgresSettings } from '../settings';
import { defaultConfigDir, type PitrSettings } from './settings';

/** Everything the pgBackRest configuration of one target is made from. */
export interface PitrSpec {
  target: string;
  pg: PostgresSettings;
  pitr: PitrSettings;
  repository: RepositoryConfig;
  retention: RetentionPolicy;
}

/** Where a target's pgBackRest files live. */
export interface PitrPaths {
  dir: string;
  config: string;
  passfile: string;
  spool: string;
  log: string;
  lock: string;
  scratch: string;
}

export function pitrPaths(spec: Pick<PitrSpec, 'target' | 'pitr'>): PitrPaths {
  const dir = spec.pitr.configDir ?? defaultConfigDir(spec.target);
  return {
    dir,
    config: join(dir, 'pgbackrest.conf'),
    passfile: join(dir, 'pgpass'),
    spool: join(dir, 'spool'),
    log: join(dir, 'log'),
    lock: join(dir, 'lock'),
    scratch: spec.pitr.scratchDir ?? join(dir, 'scratch'),
  };
}

/** The pgBackRest repository path: the lifeboat repository's prefix (or folder), then `pitr/<target>`. */
export function repoPath(spec: Pick<PitrSpec, 'target' | 'repository'>): string {
  const r = spec.repository;
  return r.kind === 's3' ? `/${[r.prefix, 'pitr', spec.target].filter(Boolean).join('/')}` : join(r.path, 'pitr', spec.target);
}

/** A URL people can read for the pgBackRest repository. */
export function repoUrl(spec: Pick<PitrSpec, 'target' | 'repository'>): string {
  return spec.repository.kind === 's3' ? `s3://${spec.repository.bucket}${repoPath(spec)}` : repoPath(spec);
}

/** The archive_command the server needs for this target (postgresql.conf). */
export function archiveCommand(spec: Pick<PitrSpec, 'target' | 'pitr'>): string {
  return `pgbackrest --config=${pitrPaths(spec).config} --stanza=${spec.target} archive-push %p`;
}

/** pgBackRest reads `key=value` lines: a value with a line break would add settings of its own. */
function line(key: string, value: string | number): string {
  const v = String(value);
  if (/[\r\n]/.test(v)) throw new LifeboatError('ConfigError', `the pgBackRest setting ${key} would contain a line break; check the value it comes from`);
  return `${key}=${v}`;
}

async function s3Lines(spec: PitrSpec): Promise<string[]> {
  const r = spec.repository;
  if (r.kind !== 's3') return [line('repo1-type', 'posix')];
  const endpoint = spec.pitr.s3Endpoint ?? r.endpoint;
  const where = `targets.${spec.target}.pitr`;
  const out = [line('repo1-type', 's3'), line('repo1-s3-bucket', r.bucket), line('repo1-s3-region', r.region), line('repo1-s3-uri-style', r.forcePathStyle ? 'path' : 'host')];
  if (endpoint) {
    const u = new URL(endpoint);
    if (u.protocol !== 'https:') {
      throw new LifeboatError(
        'ConfigError',
        `pgBackRest reaches S3 only over https, but the repository endpoint of target ${spec.target} is ${endpoint}; put TLS in front of it (e.g. stunnel) and set ${where}.s3Endpoint to that https URL, with ${where}.caFile for a private CA`,
      );
    }
    out.push(line('repo1-s3-endpoint', u.hostname), ...(u.port ? [line('repo1-storage-port', u.port)] : []));
  } else {
    out.push(line('repo1-s3-endpoint', `s3.${r.region}.amazonaws.com`));
  }
  if (spec.pitr.caFile) out.push(line('repo1-storage-ca-file', spec.pitr.caFile));
  if (!spec.pitr.verifyTls) out.push(line('repo1-storage-verify-tls', 'n'));
  if (r.accessKeyId && r.secretAccessKey) {
    out.push(line('repo1-s3-key', await resolveSecret(r.accessKeyId, 'repository.accessKeyId')));
    out.push(line('repo1-s3-key-secret', await resolveSecret(r.secretAccessKey, 'repository.secretAccessKey')));
  } else {
    out.push(line('repo1-s3-key-type', 'auto'));
  }
  return out;
}

/**
 * The whole pgbackrest.conf of a target. It holds the repository keys and
 * the cipher passphrase: it is written with mode 600 and read only by
 * pgBackRest (the `--config` option), so no secret is ever in argv.
 */
export async function renderConfig(spec: PitrSpec): Promise<string> {
  const p = pitrPaths(spec);
  const { pitr, pg } = spec;
  const passphrase = await resolveSecret(pitr.cipherPassphrase, `targets.${spec.target}.pitr.cipherPassphrase`);
  const global = [
    ...(await s3Lines(spec)),
    line('repo1-path', repoPath(spec)),
    line('repo1-cipher-type', 'aes-256-cbc'),
    line('repo1-cipher-pass', passphrase),
    line('repo1-retention-full-type', 'count'),
    line('repo1-retention-full', pitr.retention.full ?? Math.max(1, spec.retention.weekly)),
    line('repo1-retention-diff', pitr.retention.diff ?? Math.max(1, spec.retention.daily)),
    line('process-max', pitr.processMax),
    line('compress-type', pitr.compress),
    line('start-fast', 'y'),
    line('log-path', p.log),
    line('lock-path', p.lock),
    line('spool-path', p.spool),
    line('archive-async', pitr.archiveAsync ? 'y' : 'n'),
  ];
  const stanza = [line('pg1-path', pitr.dataDir), line('pg1-port', pg.port), line('pg1-socket-path', pitr.socketDir), line('pg1-user', pg.user)];
  return ['# written by lifeboat from its config; edits here are overwritten', '[global]', ...global, '', `[${spec.target}]`, ...stanza, ''].join('\n');
}

/** The OS user pgBackRest must run as: the owner of the data directory. */
export async function dataOwner(spec: Pick<PitrSpec, 'target' | 'pitr'>): Promise<{ uid: number; gid: number }> {
  try {
    const st = await stat(spec.pitr.dataDir);
    return { uid: st.uid, gid: st.gid };
  } catch (err) {
    throw new LifeboatError(
      'ConfigError',
      `the data directory ${spec.pitr.dataDir} of target ${spec.target} cannot be read (${(err as NodeJS.ErrnoException).code ?? err}): pgBackRest runs beside the database, so this target's activities must run on its host (set targets.${spec.target}.taskQueue and run 'lifeboat worker --targets ${spec.target}' there)`,
    );
  }
}

async function writeAtomic(file: string, text: string, owner: { uid: number; gid: number }): Promise<boolean> {
  const old = await readFile(file, 'utf8').catch(() => undefined);
  if (old === text) return false;
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o600 });
    if (process.getuid?.() === 0) await chown(tmp, owner.uid, owner.gid);
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
  return true;
}

/** `.pgpass` fields escape ':' and '\'. */
const field = (v: string) => v.replace(/[\\:]/g, (c) => `\\${c}`);

/**
 * Writes the folders, pgbackrest.conf and the passfile pgBackRest connects
 * with (both mode 600, owned by the data directory's owner, who runs
 * archive-push). Idempotent: unchanged files are not rewritten; a changed one
 * is replaced atomically, so archive-push never reads half a file.
 */
export async function writeConfig(spec: PitrSpec): Promise<{ paths: PitrPaths; changed: boolean; owner: { uid: number; gid: number } }> {
  const owner = await dataOwner(spec);
  const p = pitrPaths(spec);
  // Folders above the config folder that lifeboat creates must let the owner (archive-push) pass, not list.
  await mkdir(dirname(p.dir), { recursive: true, mode: 0o711 });
  for (const d of [p.dir, p.spool, p.log, p.lock, p.scratch]) {
    await mkdir(d, { recursive: true, mode: 0o700 });
    if (process.getuid?.() === 0) await chown(d, owner.uid, owner.gid);
  }
  const changed = await writeAtomic(p.config, await renderConfig(spec), owner);
  const password = spec.pg.password ? await resolveSecret(spec.pg.password, `targets.${spec.target}.password`) : '';
  await writeAtomic(p.passfile, password ? `*:${spec.pg.port}:*:${field(spec.pg.user)}:${field(password)}\n` : '', owner);
  return { paths: p, changed, owner };
}
