import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '@temporalio/worker';
import type { Activities } from '../activities';
import type { Config, MetricsConfig } from '../config';
import type { DrillRecord } from '../domain/plan';
import type { ArtifactRecord } from '../domain/manifest';
import { LifeboatError, messageOf } from '../errors';
import { openRepository } from '../repo';
import { gatherFacts } from '../repo/report-facts';
import { applyPitrRpo } from '../stores/postgres/pitr/rpo';

/**
 * The worker's Prometheus endpoint: lifeboat's own series (what the
 * repository proves about each target, and what this worker wrote) followed
 * by the Temporal SDK's runtime metrics, on the one configured port. The SDK's
 * native core serves its metrics on an address of its own; the worker binds
 * that to a free loopback port and appends its text to every scrape, so
 * operators scrape one target and the SDK's metric names stay as Temporal
 * documents them (its dashboards work unchanged).
 */

/** How many of the newest drill records the per-target drill facts come from (as `lifeboat report`). */
const DRILLS_CONSIDERED = 10;

const labelNames = ['target', 'kind'] as const;

export class LifeboatMetrics {
  readonly registry = new Registry();
  private readonly lastBackup: Gauge<'target' | 'kind'>;
  private readonly drillOk: Gauge<'target' | 'kind'>;
  private readonly drillTime: Gauge<'target' | 'kind'>;
  private readonly restoreSeconds: Gauge<'target' | 'kind'>;
  private readonly drillBackupSeconds: Gauge<'target' | 'kind'>;
  private readonly refreshedAt: Gauge;
  private readonly refreshErrors: Counter;
  readonly bytesWritten: Counter<'target' | 'kind'>;
  readonly backups: Counter<'target' | 'kind'>;
  /** The newest complete backup's finish time per target (ms since the epoch); absent: never backed up. */
  private newest = new Map<string, number>();
  private refreshing: Promise<void> | undefined;
  private warned = new Set<string>();
  private again = false;

  /** Where the SDK's own exporter answers, once the runtime that serves it is installed. */
  coreAddress: string | undefined;
  private log: Pick<Logger, 'warn'> = { warn: () => undefined };
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly config: Config) {
    const registers = [this.registry];
    const kinds = () => [...config.targets.values()];
    this.lastBackup = new Gauge({ name: 'lifeboat_last_backup_timestamp_seconds', help: 'When the newest complete backup of the target finished (Unix time); 0: never', labelNames, registers });
    const newest = this.newest;
    new Gauge({
      name: 'lifeboat_rpo_seconds',
      help: 'What would be lost if everything failed now: age of the newest complete backup of the target, or for targets with pitr: of the last WAL segment archived into the repository; +Inf: never backed up',
      labelNames,
      registers,
      collect() {
        const now = Date.now();
        for (const t of kinds()) {
          const at = newest.get(t.name);
          this.set({ target: t.name, kind: t.kind }, at === undefined ? Infinity : Math.max(0, (now - at) / 1000));
        }
      },
    });
    this.drillOk = new Gauge({ name: 'lifeboat_last_drill_success', help: "1 if the newest drill that covered the target brought every marker back, 0 if it failed", labelNames, registers });
    this.drillTime = new Gauge({ name: 'lifeboat_last_drill_timestamp_seconds', help: 'When the newest drill that covered the target finished (Unix time)', labelNames, registers });
    this.restoreSeconds = new Gauge({ name: 'lifeboat_drill_restore_seconds', help: 'Seconds the newest drill that measured the target took to restore it (the measured RTO)', labelNames, registers });
    this.drillBackupSeconds = new Gauge({ name: 'lifeboat_drill_backup_seconds', help: 'Seconds the newest drill that measured the target took to back it up', labelNames, registers });
    this.bytesWritten = new Counter({ name: 'lifeboat_backup_bytes_written_total', help: 'Bytes this worker stored in the repository for completed backups of the target', labelNames, registers });
    this.backups = new Counter({ name: 'lifeboat_backups_completed_total', help: 'Backups of the target this worker completed (manifest written)', labelNames, registers });
    this.refreshedAt = new Gauge({ name: 'lifeboat_catalog_refresh_timestamp_seconds', help: 'When the per-target facts were last read from the repository (Unix time)', registers });
    this.refreshErrors = new Counter({ name: 'lifeboat_catalog_refresh_errors_total', help: 'Reads of the repository catalog for these metrics that failed', registers });
    collectDefaultMetrics({ register: this.registry });
    for (const t of kinds()) {
      this.bytesWritten.inc({ target: t.name, kind: t.kind }, 0);
      this.backups.inc({ target: t.name, kind: t.kind }, 0);
    }
  }

  /** Starts reading the repository: now, then every `refreshSeconds` (the timer holds nothing open). */
  start(log: Pick<Logger, 'warn'>, refreshSeconds: number, coreAddress: string | undefined): void {
    this.log = log;
    this.coreAddress = coreAddress;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), refreshSeconds * 1000).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Reads the per-target facts from the repository, as `lifeboat report` does.
   * A refresh asked for while one runs runs once more after it, so what a
   * backup that just finished wrote is always seen.
   */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.readCatalog();
      } while (this.again);
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Waits for a refresh in progress (a scrape right after a backup sees it). */
  async settled(): Promise<void> {
    while (this.refreshing) await this.refreshing;
  }

  private async readCatalog(): Promise<void> {
    try {
      const now = new Date();
      const repo = await this.repo();
      const { report, warnings } = await gatherFacts(this.config, DRILLS_CONSIDERED, now, repo);
      // Targets with pitr: lose what came after their last archived WAL segment, not after the last dump (as `lifeboat report`).
      await applyPitrRpo(this.config, repo, report, warnings);
      // Said once, not at every refresh, until it changes.
      for (const w of warnings) if (!this.warned.has(w)) this.log.warn(`metrics: ${w}`);
      this.warned = new Set(warnings);
      for (const t of report.targets) {
        const labels = { target: t.target, kind: t.kind };
        // The WAL archive's age only as the server tells it now: the catalog's reading ages between PITR backups.
        if (t.rpoFrom === 'wal-archive' && t.pitr?.source === 'server' && t.rpoSeconds !== null) this.newest.set(t.target, now.getTime() - t.rpoSeconds * 1000);
        else if (t.lastBackup) this.newest.set(t.target, Date.parse(t.lastBackup.finishedAt));
        else this.newest.delete(t.target);
        this.lastBackup.set(labels, t.lastBackup ? Date.parse(t.lastBackup.finishedAt) / 1000 : 0);
        if (t.lastDrill) {
          this.drillOk.set(labels, t.lastDrill.ok ? 1 : 0);
          this.drillTime.set(labels, Date.parse(t.lastDrill.finishedAt) / 1000);
        }
        if (t.restoreSeconds.latest !== null) this.restoreSeconds.set(labels, t.restoreSeconds.latest);
        if (t.backupSeconds.latest !== null) this.drillBackupSeconds.set(labels, t.backupSeconds.latest);
      }
      this.refreshedAt.set(Date.now() / 1000);
    } catch (err) {
      this.refreshErrors.inc();
      this.log.warn(`metrics: reading the repository catalog failed: ${messageOf(err)}`, { error: err });
    }
  }

  private repoPromise: ReturnType<typeof openRepository> | undefined;
  private repo() {
    return (this.repoPromise ??= openRepository(this.config).catch((err: unknown) => {
      this.repoPromise = undefined;
      throw err;
    }));
  }

  /** A backup's manifest was written: count what it stored, and read the catalog again. */
  backupFinished(target: string, kind: string, artifacts: readonly ArtifactRecord[]): void {
    // A bucket target's backup also copies objects into the pool; its index says how many bytes.
    const pooled = artifacts.reduce((s, a) => s + (typeof a.meta?.copiedBytes === 'number' ? a.meta.copiedBytes : 0), 0);
    this.bytesWritten.inc({ target, kind }, artifacts.reduce((s, a) => s + a.bytes, 0) + pooled);
    this.backups.inc({ target, kind });
    void this.refresh();
  }

  drillRecorded(_record: DrillRecord): void {
    void this.refresh();
  }
}

/** A free port on the loopback interface, for the SDK's own exporter (see the note at the top). */
export async function freeLoopbackPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve, reject) => s.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface MetricsEndpoint {
  /** The address the endpoint listens on, e.g. `127.0.0.1:9464`. */
  address: string;
  close(): Promise<void>;
}

/** The SDK's metrics text, or a comment saying why it is missing (the scrape still succeeds). */
async function coreText(coreAddress: string | undefined): Promise<string> {
  if (!coreAddress) return '';
  try {
    const res = await fetch(`http://${coreAddress}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return await res.text();
  } catch (err) {
    return `# Temporal SDK metrics unavailable from ${coreAddress}: ${messageOf(err).replace(/\n/g, ' ')}\n`;
  }
}

/**
 * Serves GET /metrics on the configured host and port. It listens before
 * anything else of the worker starts, so a port that is taken fails the start
 * cleanly; it holds nothing open once the worker stops (unref'd; `close` ends it).
 */
export async function serveMetrics(settings: Pick<MetricsConfig, 'host' | 'port'>, metrics: LifeboatMetrics): Promise<MetricsEndpoint> {
  const up = new Gauge({ name: 'lifeboat_temporal_sdk_metrics_up', help: "1 if this scrape includes the Temporal SDK's runtime metrics", registers: [metrics.registry] });
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/metrics' && path !== '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('lifeboat worker metrics: GET /metrics\n');
      return;
    }
    void (async () => {
      await metrics.settled();
      const core = await coreText(metrics.coreAddress);
      up.set(core !== '' && !core.startsWith('# Temporal SDK metrics unavailable') ? 1 : 0);
      const own = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(`${own}\n${core}`);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${messageOf(err)}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(settings.port, settings.host, resolve)).catch((err: NodeJS.ErrnoException) => {
    const why = err.code === 'EADDRINUSE' ? 'is taken (another worker on this host?)' : `cannot be opened (${err.code ?? messageOf(err)})`;
    throw new LifeboatError('ConfigError', `metrics: ${settings.host}:${settings.port} ${why}; set another metrics.port in the config`);
  });
  server.unref();
  const { address, port } = server.address() as AddressInfo;
  return {
    address: `${address.includes(':') ? `[${address}]` : address}:${port}`,
    close: async () => {
      metrics.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The activities, with the two whose completion changes the metrics told to
 * the metrics: a manifest written, a drill recorded. The activities
 * themselves are unchanged; a metrics failure never fails them.
 */
export function instrumentActivities(activities: Activities, metrics: LifeboatMetrics): Activities {
  const { finishBackup, recordDrill } = activities;
  return {
    ...activities,
    async finishBackup(input) {
      const r = await finishBackup(input);
      metrics.backupFinished(input.target, input.kind, input.artifacts);
      return r;
    },
    async recordDrill(input) {
      const r = await recordDrill(input);
      metrics.drillRecorded(input.record);
      return r;
    },
  };
}
