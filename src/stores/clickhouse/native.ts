import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveSecret } from '../../config';
import { validateName } from '../../domain/names';
import { LifeboatError } from '../../errors';
import { listBackups, readManifest } from '../../repo/catalog';
import type { BackupItem, StoreContext } from '../types';
import { ClickhouseError, parseException, redact } from './errors';
import type { ClickhouseHttp } from './http';
import type { NativeBackupSettings } from './settings';
import { quoteIdent, quoteString } from './sql';

export const NATIVE_FORMAT = 'clickhouse-native-backup';

/** An S3 location as BACKUP/RESTORE take it; keys absent means the server's own credentials. */
export interface S3Location {
  url: string;
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** `S3('url'[, 'key', 'secret'])`. The keys are in the statement: never log it (see docs/clickhouse.md). */
export function s3Expr(loc: S3Location): string {
  const args = [loc.url];
  if (loc.accessKeyId !== undefined && loc.secretAccessKey !== undefined) args.push(loc.accessKeyId, loc.secretAccessKey);
  return `S3(${args.map(quoteString).join(', ')})`;
}

export function backupStatement(database: string, to: S3Location, base?: S3Location): string {
  return `BACKUP DATABASE ${quoteIdent(database)} TO ${s3Expr(to)}${base ? ` SETTINGS base_backup = ${s3Expr(base)}` : ''} ASYNC`;
}

export function restoreStatement(database: string, into: string, from: S3Location): string {
  return `RESTORE DATABASE ${quoteIdent(database)} AS ${quoteIdent(into)} FROM ${s3Expr(from)} ASYNC`;
}

export function statusQuery(id: string): string {
  return `SELECT * FROM system.backups WHERE id = ${quoteString(id)}`;
}

/** Operations whose destination/source contains `urlPrefix`, newest first (system.backups shows the S3 URL in `name`). */
export function findQuery(urlPrefix: string): string {
  return `SELECT * FROM system.backups WHERE position(name, ${quoteString(urlPrefix)}) > 0 ORDER BY start_time DESC`;
}

/** `<url>/<target>/<database>/<run>`: every part a validated name. */
export function backupUrl(base: string, target: string, database: string, run: string): string {
  return `${base}/${validateName('target', target)}/${validateName('database', database)}/${validateName('backup run', run)}`;
}

/** A row of system.backups; columns vary by version (22.8 has the first ones). */
export interface BackupRow {
  id: string;
  name?: string;
  status: string;
  error?: string;
  num_files?: string | number;
  uncompressed_size?: string | number;
  compressed_size?: string | number;
  total_size?: string | number;
  bytes_read?: string | number;
}

const DONE = new Set(['BACKUP_CREATED', 'BACKUP_COMPLETE', 'RESTORED']);
const FAILED = new Set(['BACKUP_FAILED', 'FAILED_TO_BACKUP', 'RESTORE_FAILED', 'FAILED_TO_RESTORE', 'BACKUP_CANCELLED', 'RESTORE_CANCELLED']);

export function phaseOf(status: string): 'running' | 'done' | 'failed' {
  return DONE.has(status) ? 'done' : FAILED.has(status) ? 'failed' : 'running';
}

/** What the native strategy stores as the artifact, and in the manifest's item meta. */
export interface NativeDescriptor {
  format: 'lifeboat-clickhouse-native-backup';
  version: 1;
  database: string;
  /** The server's id of the BACKUP operation. */
  backupId: string;
  /** Where the backup is, without credentials. */
  url: string;
  baseUrl?: string;
  /** 0 for a full backup, n for the n-th incremental on top of one. */
  chain: number;
  numFiles: number;
  uncompressedBytes: number;
  compressedBytes: number;
}

const n = (v: string | number | undefined) => Number(v ?? 0) || 0;

export class NativeStrategy {
  /** Poll interval; tests shorten it. */
  pollMs = 2000;

  constructor(
    private readonly http: ClickhouseHttp,
    private readonly target: string,
    private readonly s: NativeBackupSettings,
  ) {}

  /** Items of a database: one BACKUP DATABASE each; `run` names this backup's S3 folder (stable across retries). */
  items(databases: string[]): BackupItem[] {
    const run = `${new Date().toISOString().replace(/[-:]|\.\d+/g, '')}-${randomBytes(3).toString('hex')}`;
    return databases.map((db) => ({ item: `database:${db}`, name: db, file: `${db}.native-backup.json`, format: NATIVE_FORMAT, meta: { database: db, run } }));
  }

  /** Strings to hide from any message: the S3 keys, when configured. */
  private async secrets(): Promise<string[]> {
    const l = await this.location('');
    return [l.secretAccessKey ?? '', l.accessKeyId ?? ''].filter(Boolean);
  }

  private async location(url: string): Promise<S3Location> {
    if (!this.s.accessKeyId || !this.s.secretAccessKey) return { url };
    return {
      url,
      accessKeyId: await resolveSecret(this.s.accessKeyId, `targets.${this.target}.nativeBackupUrl.accessKeyId`),
      secretAccessKey: await resolveSecret(this.s.secretAccessKey, `targets.${this.target}.nativeBackupUrl.secretAccessKey`),
    };
  }

  /**
   * BACKUP DATABASE … ASYNC, then polls system.backups. A retry first looks for
   * the operation a crashed attempt started (same run folder) and follows it,
   * or starts a new one in a fresh sub-folder.
   */
  async backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    const database = String(item.meta?.database ?? item.name);
    const run = String(item.meta?.run ?? 'run');
    const prefix = backupUrl(this.s.url, this.target, database, run);
    const what = `BACKUP DATABASE ${database}`;
    const base = await this.base(ctx, item);
    const secrets = await this.secrets();
    let row = (await this.http.rows<BackupRow>({ sql: findQuery(prefix), what, signal: ctx.signal })).find((r) => phaseOf(r.status) !== 'failed');
    let url = row?.name ? (/'([^']*)'/.exec(row.name)?.[1] ?? prefix) : prefix;
    if (!row) {
      url = `${prefix}-${randomBytes(2).toString('hex')}`;
      const to = await this.location(url);
      const b = base && (await this.location(base.url));
      ctx.log.info('starting native backup', { database, url, base: base?.url });
      [row] = await this.http.rows<BackupRow>({ sql: backupStatement(database, to, b), what, signal: ctx.signal, secrets });
      if (!row) throw new LifeboatError('ClickhouseError', `${this.http.where()}: ${what} returned no operation id`, false);
    }
    const done = await this.follow(ctx, item.item, row.id, what, 'backup', secrets);
    const descriptor: NativeDescriptor = {
      format: 'lifeboat-clickhouse-native-backup',
      version: 1,
      database,
      backupId: done.id,
      url,
      ...(base ? { baseUrl: base.url } : {}),
      chain: base ? base.chain + 1 : 0,
      numFiles: n(done.num_files),
      uncompressedBytes: n(done.uncompressed_size),
      compressedBytes: n(done.compressed_size),
    };
    // The manifest keeps the item's meta in plaintext: the next incremental backup finds its base there.
    item.meta = { ...item.meta, ...descriptor };
    await sink(Readable.from([Buffer.from(`${JSON.stringify(descriptor, null, 2)}\n`)]));
  }

  /** The previous backup of this item, when incremental backups are on and the chain is not yet `fullEvery` long. */
  private async base(ctx: StoreContext, item: BackupItem): Promise<{ url: string; chain: number } | undefined> {
    if (!this.s.incremental || !ctx.repository) return undefined;
    const { repo } = ctx.repository;
    const listed = await listBackups(repo, [this.target]);
    for (const b of listed.reverse()) {
      // Only an authentic backup may be the base of the next one.
      const m = await readManifest(repo, this.target, b.backupId, ctx.repository.trust ?? { publicKeys: [], allowUnsigned: true }).catch(() => undefined);
      if (!m) continue;
      const prev = m.artifacts.find((a) => a.item === item.item && a.format === NATIVE_FORMAT)?.meta as Partial<NativeDescriptor> | undefined;
      if (!prev?.url || typeof prev.chain !== 'number') continue;
      return prev.chain + 1 < this.s.fullEvery ? { url: prev.url, chain: prev.chain } : undefined;
    }
    return undefined;
  }

  /** DROP DATABASE IF EXISTS into, then RESTORE DATABASE … AS into … ASYNC, polled to the end. */
  async restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of source as AsyncIterable<Buffer>) chunks.push(c);
    let d: NativeDescriptor;
    try {
      d = JSON.parse(Buffer.concat(chunks).toString('utf8')) as NativeDescriptor;
    } catch {
      throw new LifeboatError('ManifestInvalid', `artifact ${item.file} is not a lifeboat native-backup descriptor`);
    }
    if (d.format !== 'lifeboat-clickhouse-native-backup' || typeof d.url !== 'string') {
      throw new LifeboatError('ManifestInvalid', `artifact ${item.file} is not a lifeboat native-backup descriptor`);
    }
    const what = `RESTORE DATABASE ${d.database} AS ${into}`;
    ctx.progress({ stage: 'drop', item: into });
    await this.http.exec({ sql: `DROP DATABASE IF EXISTS ${quoteIdent(into)}`, what: `dropping database ${into}`, signal: ctx.signal });
    const from = await this.location(d.url);
    const secrets = await this.secrets();
    const [row] = await this.http.rows<BackupRow>({ sql: restoreStatement(d.database, into, from), what, signal: ctx.signal, secrets });
    if (!row) throw new LifeboatError('ClickhouseError', `${this.http.where()}: ${what} returned no operation id`, false);
    await this.follow(ctx, item.item, row.id, what, 'restore', secrets);
  }

  /** Polls system.backups until the operation ends; heartbeats with its progress. */
  private async follow(ctx: StoreContext, item: string, id: string, what: string, stage: string, secrets: string[]): Promise<BackupRow> {
    for (;;) {
      const [row] = await this.http.rows<BackupRow>({ sql: statusQuery(id), what, signal: ctx.signal });
      if (!row) throw new LifeboatError('ClickhouseError', `${this.http.where()}: ${what}: operation ${id} vanished from system.backups (did the server restart?); it will be started again`, false);
      const phase = phaseOf(row.status);
      if (phase === 'done') return row;
      if (phase === 'failed') {
        const { code, text } = parseException(redact(row.error ?? '', secrets));
        throw new ClickhouseError('NativeBackupFailed', `${this.http.where()}: ${what} ended ${row.status}: Code ${code ?? '?'}: ${text}`, code, code === 598 || code === 599);
      }
      ctx.progress({ stage, item, bytes: n(row.bytes_read) || n(row.uncompressed_size), totalBytes: n(row.total_size) || undefined });
      await sleep(this.pollMs, undefined, { signal: ctx.signal }).catch(() => {
        throw new LifeboatError('Cancelled', `${what} is no longer watched (cancelled); the server may still be running operation ${id}`, false);
      });
    }
  }
}
