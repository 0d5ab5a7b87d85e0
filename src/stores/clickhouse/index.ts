import type { Readable } from 'node:stream';
import { resolveSecret, type TargetConfig } from '../../config';
import { LifeboatError } from '../../errors';
import type { BackupItem, MarkerCount, ProbeResult, Store, StoreContext } from '../types';
import { ClickhouseError, UNKNOWN_DATABASE } from './errors';
import { ClickhouseHttp } from './http';
import { LogicalStrategy } from './logical';
import { NATIVE_FORMAT, NativeStrategy } from './native';
import { logicalItems, uniqueFiles } from './schema';
import { parseClickhouseSettings, type ClickhouseSettings } from './settings';
import { qualified, quoteIdent, quoteString } from './sql';

const MARKER_TABLE = 'lifeboat_drill_markers';

/** BACKUP/RESTORE … TO S3 … ASYNC and system.backups as lifeboat uses them arrived in 22.8. */
export const NATIVE_MIN_VERSION = [22, 8] as const;

export function versionAtLeast(version: string, min: readonly number[]): boolean {
  const parts = version.split('.').map((p) => parseInt(p, 10));
  for (let i = 0; i < min.length; i++) {
    const v = parts[i] ?? 0;
    if (Number.isNaN(v)) return false;
    if (v !== min[i]) return v > min[i]!;
  }
  return true;
}

/**
 * A ClickHouse target: some databases of one server, through its HTTP
 * interface. Two strategies (docs/clickhouse.md): `logical` (a schema
 * document and a Native stream per table; any version) and `native` (the
 * server's own BACKUP DATABASE … TO S3; 22.8+). Restores follow the format the
 * backup was made in, whatever the strategy is configured today.
 */
export class ClickhouseStore implements Store {
  readonly kind = 'clickhouse';
  readonly target: string;
  private readonly s: ClickhouseSettings;
  private versionCache?: Promise<string>;
  private capableCache?: Promise<boolean>;

  constructor(configFile: string, t: TargetConfig) {
    this.target = t.name;
    this.s = parseClickhouseSettings(configFile, t);
  }

  private async http(): Promise<ClickhouseHttp> {
    const password = this.s.password ? await resolveSecret(this.s.password, `targets.${this.target}.password`) : undefined;
    return new ClickhouseHttp({ url: this.s.url, user: this.s.user, password, target: this.target });
  }

  private version(ctx: StoreContext): Promise<string> {
    this.versionCache ??= this.http().then((h) => h.text({ sql: 'SELECT version()', what: 'reading the server version', signal: ctx.signal })).then((v) => v.trim());
    this.versionCache.catch(() => (this.versionCache = undefined));
    return this.versionCache;
  }

  private nativeCapable(ctx: StoreContext, version: string): Promise<boolean> {
    if (!versionAtLeast(version, NATIVE_MIN_VERSION)) return Promise.resolve(false);
    this.capableCache ??= this.http()
      .then((h) => h.text({ sql: "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'backups'", what: 'looking for system.backups', signal: ctx.signal }))
      .then((n) => n.trim() === '1');
    this.capableCache.catch(() => (this.capableCache = undefined));
    return this.capableCache;
  }

  /** auto: native when the server has BACKUP and a nativeBackupUrl is configured, else logical. */
  private async strategy(ctx: StoreContext, version: string): Promise<'native' | 'logical'> {
    if (this.s.strategy === 'logical') return 'logical';
    const capable = await this.nativeCapable(ctx, version);
    if (this.s.strategy === 'native' && !capable) {
      throw new LifeboatError('ConfigError', `target ${this.target}: ClickHouse ${version} has no BACKUP … TO S3 (it needs ${NATIVE_MIN_VERSION.join('.')} or newer); set targets.${this.target}.strategy to logical or auto`);
    }
    return capable && this.s.nativeBackup ? 'native' : 'logical';
  }

  async probe(ctx: StoreContext): Promise<ProbeResult> {
    const serverVersion = await this.version(ctx);
    const capabilities = ['logical', ...((await this.nativeCapable(ctx, serverVersion)) ? ['native'] : [])];
    const strategy = await this.strategy(ctx, serverVersion);
    return { serverVersion, tools: {}, capabilities: [...capabilities, `strategy:${strategy}`] };
  }

  async items(ctx: StoreContext): Promise<BackupItem[]> {
    const h = await this.http();
    const version = await this.version(ctx);
    const present = await h.rows<{ name: string }>({ sql: `SELECT name FROM system.databases WHERE name IN (${this.s.databases.map(quoteString).join(', ')})`, what: 'listing databases', signal: ctx.signal });
    const missing = this.s.databases.filter((d) => !present.some((p) => p.name === d));
    if (missing.length) {
      throw new ClickhouseError('DatabaseNotFound', `${h.where()}: database ${missing.join(', ')} does not exist; check targets.${this.target}.databases`, UNKNOWN_DATABASE, true);
    }
    if ((await this.strategy(ctx, version)) === 'native') return new NativeStrategy(h, this.target, this.s.nativeBackup!).items(this.s.databases);
    const logical = new LogicalStrategy(h);
    const items: BackupItem[] = [];
    for (const db of this.s.databases) items.push(...logicalItems(db, await logical.schema(ctx, db, version)));
    return uniqueFiles(items);
  }

  async backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    const h = await this.http();
    switch (item.format) {
      case 'clickhouse-schema':
        return new LogicalStrategy(h).backupSchema(ctx, item, await this.version(ctx), sink);
      case 'clickhouse-native':
        return new LogicalStrategy(h).backupTable(ctx, item, sink);
      case NATIVE_FORMAT:
        return this.native(h).backup(ctx, item, sink);
      default:
        throw unknownFormat(item);
    }
  }

  async restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable): Promise<void> {
    try {
      await this.preflight(ctx, [item]);
      const h = await this.http();
      if (item.format === 'clickhouse-schema') return await new LogicalStrategy(h).restoreSchema(ctx, item, into, source);
      if (item.format === 'clickhouse-native') return await new LogicalStrategy(h).restoreTable(ctx, item, into, source);
      return await this.native(h).restore(ctx, item, into, source);
    } catch (err) {
      // Whatever was not read of the artifact is not needed any more.
      source.destroy();
      throw err;
    }
  }

  /** Before anything is dropped: every item's format is known, and a native backup needs a server with RESTORE. */
  async preflight(ctx: StoreContext, items: BackupItem[]): Promise<void> {
    const unknown = items.find((i) => !['clickhouse-schema', 'clickhouse-native', NATIVE_FORMAT].includes(i.format));
    if (unknown) throw unknownFormat(unknown);
    if (!items.some((i) => i.format === NATIVE_FORMAT)) return;
    this.native(await this.http());
    const version = await this.version(ctx);
    if (!(await this.nativeCapable(ctx, version))) {
      throw new LifeboatError(
        'ConfigError',
        `target ${this.target}: the backup was made with BACKUP DATABASE (strategy native), and ClickHouse ${version} has no RESTORE (it needs ${NATIVE_MIN_VERSION.join('.')} or newer); restore it on a newer server. Nothing was dropped`,
      );
    }
  }

  private native(h: ClickhouseHttp): NativeStrategy {
    if (!this.s.nativeBackup) {
      throw new LifeboatError('ConfigError', `target ${this.target}: a native BACKUP item needs targets.${this.target}.nativeBackupUrl (the S3 folder and its credentials)`);
    }
    return new NativeStrategy(h, this.target, this.s.nativeBackup);
  }

  drillName(): string {
    return this.s.drillDatabase;
  }

  scratchName(token: string): string {
    return `lifeboat_drill_${token}`;
  }

  async drop(ctx: StoreContext, name: string): Promise<void> {
    ctx.progress({ stage: 'drop', item: name });
    const h = await this.http();
    await h.exec({ sql: `DROP DATABASE IF EXISTS ${quoteIdent(name)}`, what: `dropping database ${name}`, signal: ctx.signal });
  }

  async seedMarkers(ctx: StoreContext, name: string, count: number, nonce: string): Promise<void> {
    const h = await this.http();
    const t = qualified(name, MARKER_TABLE);
    const what = `seeding drill markers in ${name}`;
    await h.exec({ sql: `CREATE TABLE IF NOT EXISTS ${t} (nonce String, seq UInt32, created_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY (nonce, seq)`, what, signal: ctx.signal });
    // Only the missing ones: a retry after a crash inserts nothing twice.
    await h.exec({
      sql: `INSERT INTO ${t} (nonce, seq) SELECT ${quoteString(nonce)}, seq FROM (SELECT toUInt32(number + 1) AS seq FROM system.numbers LIMIT ${Math.trunc(count)}) WHERE seq NOT IN (SELECT seq FROM ${t} WHERE nonce = ${quoteString(nonce)})`,
      what,
      signal: ctx.signal,
    });
  }

  async countMarkers(ctx: StoreContext, name: string, nonce: string): Promise<MarkerCount> {
    const h = await this.http();
    const what = `counting drill markers in ${name}`;
    const exists = await h.text({ sql: `SELECT count() FROM system.tables WHERE database = ${quoteString(name)} AND name = ${quoteString(MARKER_TABLE)}`, what, signal: ctx.signal });
    if (exists.trim() !== '1') return { found: [] };
    const rows = await h.rows<{ seq: number }>({ sql: `SELECT seq FROM ${qualified(name, MARKER_TABLE)} WHERE nonce = ${quoteString(nonce)} ORDER BY seq`, what, signal: ctx.signal });
    return { found: rows.map((r) => Number(r.seq)) };
  }

  isPermanent(err: unknown): boolean {
    return err instanceof LifeboatError && err.permanent;
  }
}

function unknownFormat(item: BackupItem): LifeboatError {
  return new LifeboatError('ManifestInvalid', `item ${item.item} has format ${item.format}, which the clickhouse kind of this lifeboat does not know; upgrade lifeboat`);
}
