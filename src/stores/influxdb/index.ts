import { readdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { resolveSecret, type TargetConfig } from '../../config';
import { LifeboatError } from '../../errors';
import type { BackupItem, MarkerCount, ProbeResult, Store, StoreContext } from '../types';
import { afterRestore } from './after-restore';
import { FORMAT, packFiles, readArchive, summarize, type ArchiveFacts } from './archive';
import { InfluxHttp, rows } from './http';
import { quoteIdent } from './influxql';
import { count, seed } from './markers';
import { parseInfluxdbSettings, type InfluxdbSettings } from './settings';
import { diskBytes, waitLoaded } from './shards';
import { openSpool, spoolBytes, spoolFull, type Spool } from './spool';
import { backupTool, influxdVersion, major, parseVersion, PERMANENT_TOOL_ERRORS, PORTABLE_MIN_VERSION, reachRpc, restoreTool, versionAtLeast } from './tool';

/** How often the size of a running backup's spool folder is reported. */
const SPOOL_TICK_MS = 2_000;

/**
 * An InfluxDB 1.x target (1.5 or newer): some databases of one server, each
 * backed up with `influxd backup -portable` into a private spool folder and
 * streamed into the repository as one tar, restored with `influxd restore
 * -portable` (docs/influxdb.md). Queries, drops and markers go through the
 * HTTP API with the target's credentials; `influxd` talks to the server's
 * RPC service, which takes none, so no secret ever reaches a child process.
 */
export class InfluxdbStore implements Store {
  readonly kind = 'influxdb';
  readonly target: string;
  private readonly s: InfluxdbSettings;
  private toolCache?: Promise<string>;

  constructor(configFile: string, t: TargetConfig) {
    this.target = t.name;
    this.s = parseInfluxdbSettings(configFile, t);
  }

  private async http(): Promise<InfluxHttp> {
    const password = this.s.password ? await resolveSecret(this.s.password, `targets.${this.target}.password`) : undefined;
    return new InfluxHttp({ url: this.s.url, user: this.s.user, password, target: this.target });
  }

  /** The influxd tool's version (checked once: 1.5 or newer). */
  private influxd(signal: AbortSignal): Promise<string> {
    this.toolCache ??= influxdVersion(this.s.influxd, signal);
    this.toolCache.catch(() => (this.toolCache = undefined));
    return this.toolCache;
  }

  /** The server's version (header, else SHOW DIAGNOSTICS); 2.x and anything before 1.5 are refused, permanently. */
  private async serverVersion(h: InfluxHttp, ctx: StoreContext): Promise<string> {
    // /ping answers without credentials: an authenticated statement proves the login too.
    await h.query({ q: 'SHOW DATABASES', what: 'listing databases', signal: ctx.signal });
    let version = h.version && parseVersion(h.version);
    if (!version) {
      const build = (await h.query({ q: 'SHOW DIAGNOSTICS', what: 'reading the server version', signal: ctx.signal })).find((s) => s.name === 'build');
      version = parseVersion(String(rows(build ? [build] : [])[0]?.Version ?? ''));
    }
    if (!version) throw new LifeboatError('UnsupportedVersion', `${h.where()} does not say its version; is ${this.s.url} an InfluxDB 1.x HTTP API?`, true);
    if (major(version) >= 2) {
      throw new LifeboatError('UnsupportedVersion', `${h.where()} is InfluxDB ${version}: lifeboat backs up InfluxDB 1.5–1.8 (and Enterprise 1.x) only; 2.x is not supported yet (docs/influxdb.md)`, true);
    }
    if (!versionAtLeast(version, PORTABLE_MIN_VERSION)) {
      throw new LifeboatError('UnsupportedVersion', `${h.where()} is InfluxDB ${version}, which has no portable backup format (it needs ${PORTABLE_MIN_VERSION.join('.')} or newer); upgrade the server`, true);
    }
    return version;
  }

  async probe(ctx: StoreContext): Promise<ProbeResult> {
    const serverVersion = await this.serverVersion(await this.http(), ctx);
    const influxd = await this.influxd(ctx.signal);
    await reachRpc(this.s.rpcAddress, this.target, ctx.signal);
    return { serverVersion, tools: { influxd }, capabilities: [FORMAT] };
  }

  async items(ctx: StoreContext): Promise<BackupItem[]> {
    await this.requireDatabases(await this.http(), this.s.databases, ctx);
    return this.s.databases.map((db) => ({ item: `database:${db}`, name: db, file: `${db}.influxdb.tar`, format: FORMAT, meta: {} }));
  }

  private async exists(h: InfluxHttp, db: string, ctx: StoreContext): Promise<boolean> {
    return rows(await h.query({ q: 'SHOW DATABASES', what: 'listing databases', signal: ctx.signal })).some((r) => r.name === db);
  }

  private async requireDatabases(h: InfluxHttp, wanted: string[], ctx: StoreContext): Promise<void> {
    const present = new Set(rows(await h.query({ q: 'SHOW DATABASES', what: 'listing databases', signal: ctx.signal })).map((r) => String(r.name)));
    const missing = wanted.filter((d) => !present.has(d));
    if (missing.length) {
      throw new LifeboatError('DatabaseNotFound', `${h.where()}: database ${missing.join(', ')} does not exist (or the user may not read it); check targets.${this.target}.databases`, true);
    }
  }

  async backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    if (item.format !== FORMAT) throw unknownFormat(item);
    const h = await this.http();
    const influxd = await this.influxd(ctx.signal);
    // influxd backup of a missing database fails with a bare "EOF".
    await this.requireDatabases(h, [item.name], ctx);
    await reachRpc(this.s.rpcAddress, this.target, ctx.signal);
    const spool = await openSpool(this.s.spoolDir, this.target, ctx.log);
    try {
      const needed = await diskBytes(h, item.name, ctx, this.target);
      const free = await spool.free();
      if (needed !== undefined && needed > free) throw spoolFull(spool.path, this.target, free, needed);
      ctx.progress({ stage: 'snapshot', item: item.item });
      const tick = setInterval(() => void spoolBytes(spool.path).then((bytes) => ctx.progress({ stage: 'snapshot', item: item.item, bytes })), SPOOL_TICK_MS);
      try {
        await backupTool(this.s.influxd, this.s.rpcAddress, item.name, spool.path, ctx.signal);
      } catch (err) {
        throw await this.spoolError(err, spool);
      } finally {
        clearInterval(tick);
      }
      const names = await readdir(spool.path);
      if (names.filter((n) => n.endsWith('.manifest')).length !== 1 || names.filter((n) => n.endsWith('.meta')).length !== 1) {
        throw new LifeboatError('ToolFailed', `influxd backup of database ${item.name} exited 0 but left ${names.join(', ') || 'nothing'} in ${spool.path}, not one manifest and one meta file`, false);
      }
      // Facts for the restore: the room its spool needs, and the tool that made the files.
      Object.assign((item.meta ??= {}), { influxd, fileBytes: await spoolBytes(spool.path), files: names.length });
      ctx.progress({ stage: 'upload', item: item.item });
      await sink(packFiles(spool.path, names));
    } finally {
      await spool.remove();
    }
  }

  /** A tool or write failure because the spool's disk is full becomes a permanent error naming the folder. */
  private async spoolError(err: unknown, spool: Spool): Promise<unknown> {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOSPC' || (err instanceof LifeboatError && err.type === 'ToolFailed' && /no space left on device/i.test(err.message))) {
      return spoolFull(spool.path, this.target, await spool.free().catch(() => 0));
    }
    return err;
  }

  async restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable): Promise<void> {
    let spool: Spool | undefined;
    try {
      if (item.format !== FORMAT) throw unknownFormat(item);
      const h = await this.http();
      await this.influxd(ctx.signal);
      await reachRpc(this.s.rpcAddress, this.target, ctx.signal);
      spool = await openSpool(this.s.spoolDir, this.target, ctx.log);
      const needed = Number(item.meta?.fileBytes);
      const free = await spool.free();
      if (needed > free) throw spoolFull(spool.path, this.target, free, needed);
      // The whole artifact is read, authenticated and checked into the spool before anything is dropped.
      ctx.progress({ stage: 'spool', item: item.item });
      let facts: ArchiveFacts;
      try {
        facts = await readArchive(source, { database: item.name, dir: spool.path });
      } catch (err) {
        throw await this.spoolError(err, spool);
      }
      // influxd restore never writes over a database: drop first (a retry drops what a dead attempt half-restored).
      await this.drop(ctx, into);
      ctx.progress({ stage: 'load', item: item.item });
      await restoreTool(this.s.influxd, this.s.rpcAddress, item.name, into, spool.path, ctx.signal).catch(async (err: unknown) => {
        // influxd reports a database without shards as "DB metadata not changed" (no shard ids came back), yet the server created it.
        if (facts.shards.length > 0 || !/DB metadata not changed/.test((err as Error).message) || !(await this.exists(h, into, ctx))) throw err;
      });
      await waitLoaded(h, into, facts.shards.filter((s) => s.tsm > 0).length, ctx, this.target);
      await afterRestore(ctx, h, item.name, into, facts, this.target);
    } catch (err) {
      // Whatever was not read of the artifact is not needed any more.
      source.destroy();
      throw err;
    } finally {
      await spool?.remove();
    }
  }

  /** Before any writer is stopped: known formats, an influxd that can restore them, a 1.5+ server, a reachable RPC service. */
  async preflight(ctx: StoreContext, items: BackupItem[]): Promise<void> {
    const unknown = items.find((i) => i.format !== FORMAT);
    if (unknown) throw unknownFormat(unknown);
    if (items.length === 0) return;
    await this.serverVersion(await this.http(), ctx);
    await this.influxd(ctx.signal);
    await reachRpc(this.s.rpcAddress, this.target, ctx.signal);
  }

  async inspect(_ctx: StoreContext, item: BackupItem, plaintext: Readable): Promise<string> {
    if (item.format !== FORMAT) throw unknownFormat(item);
    return summarize(item.name, await readArchive(plaintext, { database: item.name }));
  }

  drillName(): string {
    return this.s.drillDatabase;
  }

  scratchName(token: string): string {
    return `lifeboat_drill_${token}`;
  }

  async drop(ctx: StoreContext, name: string): Promise<void> {
    ctx.progress({ stage: 'drop', item: name });
    // DROP DATABASE of a database that does not exist succeeds: idempotent as it is.
    await (await this.http()).query({ q: `DROP DATABASE ${quoteIdent(name)}`, what: `dropping database ${name}`, signal: ctx.signal });
  }

  async seedMarkers(ctx: StoreContext, name: string, n: number, nonce: string): Promise<void> {
    await seed(await this.http(), name, n, nonce, ctx.signal);
  }

  async countMarkers(ctx: StoreContext, name: string, nonce: string): Promise<MarkerCount> {
    return { found: await count(await this.http(), name, nonce, ctx.signal) };
  }

  isPermanent(err: unknown): boolean {
    return err instanceof LifeboatError && (err.permanent || (err.type === 'ToolFailed' && PERMANENT_TOOL_ERRORS.test(err.message)));
  }
}

function unknownFormat(item: BackupItem): LifeboatError {
  return new LifeboatError('ManifestInvalid', `item ${item.item} has format ${item.format}, which the influxdb kind of this lifeboat does not know; upgrade lifeboat`);
}
