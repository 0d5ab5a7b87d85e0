/**
 * The PostgreSQL part of `npm run bench`: lifeboat's orchestrated backup and
 * restore (real workflows through Temporal, run by a real worker process)
 * against two baselines: bare pg_dump / pg_restore with a local file, and the
 * pipeline an operator writes by hand (`pg_dump -Fc | age | rclone rcat`,
 * `rclone cat | age -d | pg_restore`), on a pgbench database and a wide one
 * (jsonb and text); the stored artifact's size against pg_dump -Fc's file; the
 * effect of the zstd level; and the worker process's peak RSS. See
 * docs/benchmarks.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Client as PgClient } from 'pg';
import { parse, stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { resolveSecret, type Config } from '../src/config';
import { loadConfig } from '../src/config/load';
import type { BackupResult, RestoreInput, RestoreResult } from '../src/domain/plan';
import { openRepository, type Repository } from '../src/repo';
import { parsePostgresSettings, toolPath, type PostgresSettings } from '../src/stores/postgres/settings';
import { MB, procMemory, resetPeak, round, run, say, startWorkerProcess, timed, type WorkerProcess } from './lib';


export interface PostgresBenchOptions {
  /** The stack's config file ($LIFEBOAT_CONFIG): Temporal, repository, encryption and the Postgres server. */
  stackConfigFile: string;
  /** Scratch folder (dump files, generated configs); gitignored, e.g. $LIFEBOAT_STATE_DIR/bench. */
  workDir: string;
  /** Passfile for pgbench, pg_dump, pg_restore (PGPASSFILE). */
  passfile: string;
  /** Timed runs of each of bare and orchestrated, per operation, after one untimed warm-up of each. */
  runs: number;
  /** Override the repository's multipart part size / queue depth for the worker (default: the config's). */
  partSizeMB?: number;
  queueSize?: number;
}

export interface Comparison {
  bareSeconds: number[];
  orchestratedSeconds: number[];
  /** The hand-made pipeline (pg_dump -Fc | age | rclone rcat, and back), when measured. */
  handSeconds: number[];
  /** The median over the timed runs of orchestrated / bare (each run's sides ran back to back). */
  ratio: number;
  /** The same, orchestrated / hand-made pipeline. */
  handRatio: number | null;
  /** median(orchestrated) / median(bare): the same figure, less robust to drifting load. */
  ratioOfMedians: number;
  /** Median seconds per activity type of the timed orchestrated runs, and `other`: the rest of the wall time. */
  orchestratedActivitySeconds: Record<string, number>;
}

export interface SizeResult {
  /** pgbench scale, or 0 for the wide database. */
  scale: number;
  /** What the database holds: `pgbench` or `wide` (jsonb and text). */
  shape: 'pgbench' | 'wide';
  database: string;
  dbBytes: number;
  reused: boolean;
  buildSeconds?: number;
  backup: Comparison & { bareDumpBytes: number; artifactBytes: number };
  restore: Comparison;
  worker: {
    /** VmHWM when the worker was ready: includes bundling the workflow code at start-up. */
    startupPeakRssMB: number;
    /** VmRSS when the worker was ready, before any job. */
    readyRssMB: number;
    /** Peak RSS over all jobs, counted from the moment the worker was ready (VmHWM reset then). */
    peakRssMB: number;
    /** VmHWM over the backups (warm-up and timed), and over the restores (reset in between). */
    backupPeakRssMB: number;
    restorePeakRssMB: number;
    /** false if the kernel refused the peak reset: then peakRssMB includes start-up. */
    peakResetAtReady: boolean;
  };
  repository: { partSizeMB: number; queueSize: number };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The environment the measurements share: the stack config, a Postgres connection, a Temporal client. */
export class PostgresBench {
  private readonly stack: Config;
  private readonly pg: PostgresSettings;
  private readonly baseTarget: Record<string, unknown>;
  private readonly runId = randomBytes(4).toString('hex');
  /**
   * The target's name, one per run: lifeboat holds a target with a `lock/<target>`
   * workflow, and a run killed mid-operation would otherwise leave the next run
   * waiting for a lock whose holder's worker is gone.
   */
  private readonly target = `bench-pg-${this.runId}`;
  /** The workflow in flight, to terminate if the run is interrupted (its worker goes with us). */
  private current?: { terminate(reason?: string): Promise<unknown> };
  private temporal?: { client: Client; connection: Connection };
  private repo?: Repository;

  constructor(private readonly opts: PostgresBenchOptions) {
    this.stack = loadConfig(opts.stackConfigFile);
    const t = [...this.stack.targets.values()].find((x) => x.kind === 'postgres');
    if (!t) throw new Error(`${opts.stackConfigFile} has no postgres target to take the server from`);
    this.pg = parsePostgresSettings(this.stack.file, t);
    this.baseTarget = t.settings;
    mkdirSync(opts.workDir, { recursive: true, mode: 0o700 });
  }

  /** The repository prefix this run writes under, deleted at the end. */
  get prefix(): string {
    const base = this.stack.repository.kind === 's3' ? this.stack.repository.prefix : 'lifeboat';
    return `${base.split('/')[0]}-bench/${this.runId}`;
  }

  private tool(name: string): string {
    return toolPath(this.pg, name);
  }

  /** Connection options of pg_dump and pg_restore (pgbench has no --no-password; stdin is closed, so it cannot prompt). */
  private connArgs(noPassword = true): string[] {
    return ['--host', this.pg.host, '--port', String(this.pg.port), '--username', this.pg.user, ...(noPassword ? ['--no-password'] : [])];
  }

  private toolEnv(): Record<string, string> {
    return { PGPASSFILE: this.opts.passfile };
  }

  async sql<T = Record<string, unknown>>(database: string, text: string, params: unknown[] = []): Promise<T[]> {
    const password = this.pg.password ? await resolveSecret(this.pg.password, 'postgres password') : undefined;
    const c = new PgClient({ host: this.pg.host, port: this.pg.port, user: this.pg.user, password, database });
    await c.connect();
    try {
      return (await c.query(text, params)).rows as T[];
    } finally {
      await c.end();
    }
  }

  private ident(name: string): string {
    if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`unexpected database name ${name}`);
    return `"${name}"`;
  }

  async dropDatabase(name: string): Promise<void> {
    await this.sql(this.pg.maintenanceDatabase, `DROP DATABASE IF EXISTS ${this.ident(name)} WITH (FORCE)`);
  }

  async databaseBytes(name: string): Promise<number> {
    const [r] = await this.sql<{ n: string }>(this.pg.maintenanceDatabase, 'SELECT pg_database_size($1)::text AS n', [name]);
    return Number(r!.n);
  }

  /**
   * `lifeboat_bench_s<N>`, built with `pgbench -i -s N` unless a complete one
   * exists (marked by a database comment written after a successful build).
   */
  async ensureDatabase(scale: number): Promise<{ name: string; reused: boolean; buildSeconds?: number }> {
    const name = `lifeboat_bench_s${scale}`;
    const mark = `lifeboat bench: pgbench -i -s ${scale}, complete`;
    const [row] = await this.sql<{ c: string | null }>(this.pg.maintenanceDatabase, 'SELECT shobj_description(oid, \'pg_database\') AS c FROM pg_database WHERE datname = $1', [name]);
    if (row && row.c === mark) {
      say(`reusing database ${name} (built earlier with pgbench -i -s ${scale}); drop it to rebuild`);
      return { name, reused: true };
    }
    if (row) say(`database ${name} exists but is not a complete bench database: rebuilding it`);
    await this.dropDatabase(name);
    await this.sql(this.pg.maintenanceDatabase, `CREATE DATABASE ${this.ident(name)}`);
    say(`building ${name}: pgbench -i -s ${scale} (about ${Math.round(scale * 15)} MB; a few minutes for large scales)`);
    const { seconds } = await timed(() => run(this.tool('pgbench'), [...this.connArgs(false), '--initialize', '--quiet', '--scale', String(scale), name], { env: this.toolEnv(), echo: true }));
    await this.sql(this.pg.maintenanceDatabase, `COMMENT ON DATABASE ${this.ident(name)} IS '${mark}'`);
    say(`built ${name} in ${seconds.toFixed(0)}s`);
    return { name, reused: false, buildSeconds: round(seconds, 1) };
  }

  /**
   * `lifeboat_bench_wide_<MB>`: rows of jsonb and text (not pgbench's
   * integers), about `mb` MB as PostgreSQL stores them; built once and reused.
   */
  async ensureWideDatabase(mb: number): Promise<{ name: string; reused: boolean; buildSeconds?: number }> {
    const name = `lifeboat_bench_wide_${mb}`;
    const mark = `lifeboat bench: wide ${mb} MB, complete`;
    const [row] = await this.sql<{ c: string | null }>(this.pg.maintenanceDatabase, "SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = $1", [name]);
    if (row && row.c === mark) {
      say(`reusing database ${name}; drop it to rebuild`);
      return { name, reused: true };
    }
    await this.dropDatabase(name);
    await this.sql(this.pg.maintenanceDatabase, `CREATE DATABASE ${this.ident(name)}`);
    // About 560 bytes a row on disk: documents with varied keys and values, a free-text body, a timestamp.
    const rows = Math.round((mb * MB) / 560);
    say(`building ${name}: ${rows} rows of jsonb and text (about ${mb} MB)`);
    const { seconds } = await timed(async () => {
      await this.sql(
        name,
        `CREATE TABLE events AS
           SELECT g AS id,
                  jsonb_build_object('tenant', 'tenant-' || (g % 97), 'user', 'user-' || (g % 5003), 'kind', (ARRAY['click','view','buy','refund','login'])[1 + g % 5],
                                     'tags', jsonb_build_array('t' || (g % 13), 't' || (g % 29)), 'score', (g::bigint * 7919) % 1000, 'session', md5(g::text)) AS doc,
                  'event ' || g || ': ' || repeat(md5((g * 3)::text) || ' lorem ipsum dolor sit amet ', 3) AS body,
                  timestamptz '2026-01-01' + (g || ' seconds')::interval AS at
             FROM generate_series(1, $1::int) AS g`,
        [rows],
      );
      await this.sql(name, 'ALTER TABLE events ADD PRIMARY KEY (id)');
      await this.sql(name, 'CREATE INDEX events_at ON events (at)');
    });
    await this.sql(this.pg.maintenanceDatabase, `COMMENT ON DATABASE ${this.ident(name)} IS '${mark}'`);
    say(`built ${name} in ${seconds.toFixed(0)}s`);
    return { name, reused: false, buildSeconds: round(seconds, 1) };
  }

  /** A config for the worker: the stack's, with one target backing up `database` and this run's prefix. */
  private writeWorkerConfig(database: string, compressionLevel?: number): { file: string; partSizeMB: number; queueSize: number } {
    const raw = parse(readFileSync(this.stack.file, 'utf8')) as Record<string, unknown>;
    const from = dirname(this.stack.file);
    // Paths in the stack config are relative to it; the bench config lives elsewhere.
    const absolutize = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(absolutize);
      if (v && typeof v === 'object') {
        return Object.fromEntries(
          Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, typeof x === 'string' && ['file', 'identityFile', 'path'].includes(k) && !isAbsolute(x) ? resolve(from, x) : absolutize(x)]),
        );
      }
      return v;
    };
    const cfg = absolutize(raw) as Record<string, Record<string, unknown>>;
    const repo = { ...cfg.repository };
    if (repo.kind === 's3') {
      repo.prefix = this.prefix;
      if (this.opts.partSizeMB) repo.partSizeMB = this.opts.partSizeMB;
      if (this.opts.queueSize) repo.queueSize = this.opts.queueSize;
    }
    const base = absolutize(this.baseTarget) as Record<string, unknown>;
    // Like for like with one bare pg_dump: just the database, not the server's roles (`globals`,
    // on by default where supported; an unknown key to versions without it).
    const target = { ...base, databases: [database], drillDatabase: database, globals: false };
    const out = { ...cfg, repository: repo, targets: { [this.target]: target }, ...(compressionLevel ? { compression: { level: compressionLevel } } : {}) };
    const file = join(this.opts.workDir, `lifeboat-bench-${database}${compressionLevel ? `-z${compressionLevel}` : ''}.yaml`);
    writeFileSync(file, stringify(out), { mode: 0o600 });
    const parsed = loadConfig(file).repository;
    return { file, partSizeMB: parsed.kind === 's3' ? parsed.partSizeMB : 0, queueSize: parsed.kind === 's3' ? parsed.queueSize : 0 };
  }

  private async client(): Promise<Client> {
    if (!this.temporal) {
      const connection = await Connection.connect({ address: this.stack.temporal.address });
      this.temporal = { connection, client: new Client({ connection, namespace: this.stack.temporal.namespace }) };
    }
    return this.temporal.client;
  }

  /** Runs a workflow to its end (the timed part); remembers it, to read its history after the clock stopped. */
  private async workflow<T>(type: string, taskQueue: string, input: unknown): Promise<T> {
    const client = await this.client();
    const handle = await client.workflow.start(type, { taskQueue, workflowId: `bench-${type}-${randomBytes(6).toString('hex')}`, args: [input] });
    this.current = handle;
    const result = (await handle.result()) as T;
    this.current = undefined;
    this.lastRun = handle;
    return result;
  }

  private lastRun?: { fetchHistory(): Promise<{ events?: unknown[] | null }> };

  /** Before every timed step: no dirty buffers or page cache left over from the previous one. */
  private async settle(): Promise<void> {
    await this.sql(this.pg.maintenanceDatabase, 'CHECKPOINT');
    await run('sync', []);
  }

  private bareDump(database: string, file: string): Promise<string> {
    // lifeboat's pg_dump arguments (src/stores/postgres/index.ts), with --file instead of stdout:
    // custom format at pg_dump's default compression.
    return run(this.tool('pg_dump'), [...this.connArgs(), '--format=custom', '--file', file, '--dbname', database], { env: this.toolEnv() });
  }

  private async bareRestore(file: string, into: string): Promise<void> {
    await run(this.tool('pg_restore'), [...this.connArgs(), '--exit-on-error', '--dbname', into, file], { env: this.toolEnv() });
  }

  /** The rclone remote path of the hand-made pipeline's artifact, under this run's prefix. */
  private handObject(database: string): string {
    const r = this.stack.repository;
    if (r.kind !== 's3') throw new Error('the hand-made pipeline baseline needs the S3 repository');
    return `local-minio:${r.bucket}/${this.prefix}/hand/${database}.dump.age`;
  }

  /** What an operator writes by hand: pg_dump -Fc | age -r R | rclone rcat. Recipients are public; no secret in argv. */
  private handBackup(database: string): Promise<string> {
    const recipient = this.stack.encryption?.recipients[0];
    if (!recipient) throw new Error('the hand-made pipeline baseline needs encryption recipients');
    const q = (x: string) => `'${x.replace(/'/g, "'\\''")}'`;
    const pipe = `${q(this.tool('pg_dump'))} ${this.connArgs().map(q).join(' ')} --format=custom --dbname ${q(database)} | age -r ${q(recipient)} | rclone --config ${q(this.rcloneConfig)} rcat ${q(this.handObject(database))}`;
    return run('bash', ['-o', 'pipefail', '-c', pipe], { env: { ...this.toolEnv(), AWS_CA_BUNDLE: '' } });
  }

  /** And back: rclone cat | age -d -i IDENTITY | pg_restore. */
  private handRestore(database: string, into: string): Promise<string> {
    const identity = this.stack.encryption?.identityFile;
    if (!identity) throw new Error('the hand-made pipeline baseline needs encryption.identityFile');
    const q = (x: string) => `'${x.replace(/'/g, "'\\''")}'`;
    const pipe = `rclone --config ${q(this.rcloneConfig)} cat ${q(this.handObject(database))} | age -d -i ${q(identity)} | ${q(this.tool('pg_restore'))} ${this.connArgs().map(q).join(' ')} --exit-on-error --dbname ${q(into)}`;
    return run('bash', ['-o', 'pipefail', '-c', pipe], { env: { ...this.toolEnv(), AWS_CA_BUNDLE: '' } });
  }

  private get rcloneConfig(): string {
    return join(dirname(this.opts.passfile), 'rclone.conf');
  }

  /**
   * One database size, in a fresh worker process: warm-up then timed backups
   * (bare and orchestrated, alternating), warm-up then timed restores, then
   * the worker's peak RSS.
   */
  async measure(scale: number, shape: 'pgbench' | 'wide' = 'pgbench', wideMB = 0): Promise<SizeResult> {
    const db = shape === 'wide' ? await this.ensureWideDatabase(wideMB) : await this.ensureDatabase(scale);
    const dbBytes = await this.databaseBytes(db.name);
    say(`${db.name}: ${(dbBytes / MB).toFixed(0)} MB (pg_database_size)`);
    const dumpFile = join(this.opts.workDir, `${db.name}.dump`);
    const intoBare = `${db.name}_rbare`;
    const intoHand = `${db.name}_rhand`;
    const intoOrch = `${db.name}_rlb`;
    const worker = this.writeWorkerConfig(db.name);
    const taskQueue = `lifeboat-bench-${this.runId}-s${scale}`;

    say(`starting a worker process on task queue ${taskQueue} (part size ${worker.partSizeMB} MiB x queue ${worker.queueSize})`);
    const wp: WorkerProcess = await startWorkerProcess(worker.file, taskQueue);
    const cleanUp = async () => {
      // A workflow still running here failed on our side (or we were interrupted): end it with us.
      await this.current?.terminate('lifeboat bench stopped').catch(() => undefined);
      this.current = undefined;
      await wp.stop();
      rmSync(dumpFile, { force: true });
      await this.dropDatabase(intoBare).catch(() => undefined);
      await this.dropDatabase(intoHand).catch(() => undefined);
      await this.dropDatabase(intoOrch).catch(() => undefined);
    };
    this.inProgress = cleanUp;
    try {
      const atReady = procMemory(wp.pid);
      const peakResetAtReady = resetPeak(wp.pid);
      say(`worker pid ${wp.pid} ready: RSS ${atReady.rssMB} MB, start-up peak ${atReady.hwmMB} MB${peakResetAtReady ? '; peak reset' : '; could not reset the peak (kernel)'}`);

      const bareBackup = async () => {
        rmSync(dumpFile, { force: true });
        await this.bareDump(db.name, dumpFile);
      };
      let backupId = '';
      let artifactBytes = 0;
      const orchBackup = async () => {
        const r = await this.workflow<BackupResult>('backupWorkflow', taskQueue, { targets: [this.target] });
        backupId = r.backupId;
        artifactBytes = r.targets[0]!.bytes; // the sum of its artifacts' stored (encrypted) bytes
      };
      const fresh = (into: string) => async () => {
        await this.dropDatabase(into);
        await this.sql(this.pg.maintenanceDatabase, `CREATE DATABASE ${this.ident(into)} TEMPLATE template0`);
      };
      const restoreInput = (): RestoreInput => ({ backupId, targets: [this.target], into: { [this.target]: { [db.name]: intoOrch } }, yes: true });
      const orchRestore = async () => {
        await this.workflow<RestoreResult>('restoreWorkflow', taskQueue, restoreInput());
      };

      const backup = await this.compare(`${db.name} backup`, {
        bare: { prepare: () => Promise.resolve(), run: bareBackup },
        hand: { prepare: () => Promise.resolve(), run: () => this.handBackup(db.name).then(() => undefined) },
        orchestrated: { prepare: () => Promise.resolve(), run: orchBackup },
      });
      const bareDumpBytes = statSync(dumpFile).size;

      const afterBackups = procMemory(wp.pid);
      if (peakResetAtReady) resetPeak(wp.pid);
      say(`${db.name}: worker peak RSS during the backups ${afterBackups.hwmMB} MB (RSS now ${afterBackups.rssMB} MB)`);

      const restore = await this.compare(`${db.name} restore`, {
        bare: { prepare: fresh(intoBare), run: () => this.bareRestore(dumpFile, intoBare) },
        hand: { prepare: fresh(intoHand), run: () => this.handRestore(db.name, intoHand).then(() => undefined) },
        // The workflow drops and creates the database itself; dropping the previous copy first
        // keeps that (untimed for bare too) cost out of the measurement.
        orchestrated: { prepare: () => this.dropDatabase(intoOrch), run: orchRestore },
      });

      const afterRestores = procMemory(wp.pid);
      say(`${db.name}: worker peak RSS during the restores ${afterRestores.hwmMB} MB (RSS now ${afterRestores.rssMB} MB)`);
      const peakRssMB = peakResetAtReady ? Math.max(afterBackups.hwmMB, afterRestores.hwmMB) : afterRestores.hwmMB;
      await this.checkRestored(db.name, [intoBare, intoHand, intoOrch]);

      const result: SizeResult = {
        scale: shape === 'wide' ? 0 : scale,
        shape,
        database: db.name,
        dbBytes,
        reused: db.reused,
        ...(db.buildSeconds !== undefined ? { buildSeconds: db.buildSeconds } : {}),
        backup: { ...backup, bareDumpBytes, artifactBytes },
        restore,
        worker: {
          startupPeakRssMB: atReady.hwmMB,
          readyRssMB: atReady.rssMB,
          peakRssMB,
          backupPeakRssMB: afterBackups.hwmMB,
          restorePeakRssMB: afterRestores.hwmMB,
          peakResetAtReady,
        },
        repository: { partSizeMB: worker.partSizeMB, queueSize: worker.queueSize },
      };
      return result;
    } finally {
      this.inProgress = undefined;
      await cleanUp();
    }
  }

  /**
   * The zstd level's effect on the backup of `database`: a worker per level
   * (the level is the worker's config), one untimed warm-up and one timed
   * backup each; seconds and the stored artifact's bytes.
   */
  async levels(database: string, levels: number[]): Promise<Array<{ level: number; seconds: number; artifactBytes: number }>> {
    const out = [];
    for (const level of levels) {
      const worker = this.writeWorkerConfig(database, level);
      const taskQueue = `lifeboat-bench-${this.runId}-z${level}`;
      const wp = await startWorkerProcess(worker.file, taskQueue);
      try {
        await this.workflow<BackupResult>('backupWorkflow', taskQueue, { targets: [this.target] });
        await this.settle();
        const { seconds, value } = await timed(() => this.workflow<BackupResult>('backupWorkflow', taskQueue, { targets: [this.target] }));
        out.push({ level, seconds: round(seconds, 2), artifactBytes: value.targets[0]!.bytes });
        say(`${database} at zstd level ${level}: ${seconds.toFixed(2)}s, ${(value.targets[0]!.bytes / MB).toFixed(1)} MB stored`);
      } finally {
        await wp.stop();
      }
    }
    return out;
  }

  /**
   * A small database's backup: where the time goes besides pg_dump itself
   * (bare pg_dump of the same database subtracted from the orchestrated
   * backup's wall time), with the per-activity breakdown.
   */
  async smallOverhead(scale: number): Promise<{ database: string; bareSeconds: number; orchestratedSeconds: number; outsideDumpSeconds: number; activitySeconds: Record<string, number> }> {
    const db = await this.ensureDatabase(scale);
    const worker = this.writeWorkerConfig(db.name);
    const taskQueue = `lifeboat-bench-${this.runId}-small`;
    const dumpFile = join(this.opts.workDir, `${db.name}-small.dump`);
    const wp = await startWorkerProcess(worker.file, taskQueue);
    try {
      const c = await this.compare(`${db.name} small backup`, {
        bare: { prepare: () => Promise.resolve(), run: () => this.bareDump(db.name, dumpFile).then(() => undefined) },
        orchestrated: { prepare: () => Promise.resolve(), run: () => this.workflow<BackupResult>('backupWorkflow', taskQueue, { targets: [this.target] }).then(() => undefined) },
      });
      const bare = median(c.bareSeconds);
      const orch = median(c.orchestratedSeconds);
      return { database: db.name, bareSeconds: round(bare, 3), orchestratedSeconds: round(orch, 3), outsideDumpSeconds: round(orch - bare, 3), activitySeconds: c.orchestratedActivitySeconds };
    } finally {
      await wp.stop();
      rmSync(dumpFile, { force: true });
    }
  }

  /**
   * One untimed warm-up of each, then `runs` timed runs of each, alternating
   * which goes first (bare, orch, orch, bare, …) so neither always follows the
   * other. Each timed run is preceded by its untimed `prepare` and a settle.
   * The ratio is the median of the runs' quotients: one slow run (a
   * checkpoint, a hiccup of the shared machine) does not decide it.
   */
  private async compare(
    what: string,
    sides: Record<'bare' | 'orchestrated', { prepare: () => Promise<void>; run: () => Promise<void> }> & { hand?: { prepare: () => Promise<void>; run: () => Promise<void> } },
  ): Promise<Comparison> {
    type Side = 'bare' | 'hand' | 'orchestrated';
    const times: Record<Side, number[]> = { bare: [], hand: [], orchestrated: [] };
    const all: Side[] = sides.hand ? ['bare', 'hand', 'orchestrated'] : ['bare', 'orchestrated'];
    const activities: Array<Record<string, number>> = [];
    const once = async (side: Side, label: string) => {
      await sides[side]!.prepare();
      await this.settle();
      this.lastRun = undefined;
      const { seconds } = await timed(sides[side]!.run);
      // Per activity type, the seconds its activities ran, from the workflow's history (untimed).
      const last = this.lastRun as PostgresBench['lastRun']; // set by sides[side].run, if it ran a workflow
      const ran = last ? activitySeconds(await last.fetchHistory()) : {};
      const parts = Object.entries(ran).map(([k, v]) => `${k} ${v.toFixed(2)}s`);
      say(`${what}, ${side}${label}: ${seconds.toFixed(2)}s${parts.length ? ` (activities: ${parts.join(', ')})` : ''}`);
      if (side === 'orchestrated' && !label.includes('warm-up')) activities.push({ ...ran, total: seconds });
      return seconds;
    };
    for (const side of all) await once(side, ' (warm-up, untimed)');
    for (let i = 0; i < this.opts.runs; i++) {
      // Each run's order rotates, so no side always follows the same other one.
      const order = all.map((_, k) => all[(k + i) % all.length]!);
      for (const side of order) times[side].push(round(await once(side, ` (run ${i + 1})`), 3));
    }
    // Run i's sides ran back to back: their quotient cancels slow drifts of a shared
    // machine's load, which the quotient of the medians does not.
    const ratio = round(median(times.orchestrated.map((o, i) => o / times.bare[i]!)), 3);
    const handRatio = sides.hand ? round(median(times.orchestrated.map((o, i) => o / times.hand[i]!)), 3) : null;
    const ratioOfMedians = round(median(times.orchestrated) / median(times.bare), 3);
    say(`${what}: orchestrated / bare = ${ratio}${handRatio !== null ? `, orchestrated / hand-made pipeline = ${handRatio}` : ''} (medians of the runs' quotients)`);
    // Median seconds per activity type over the timed orchestrated runs; `other` is what
    // no activity accounts for: Temporal's scheduling, workflow tasks, the client's round trips.
    const names = [...new Set(activities.flatMap((a) => Object.keys(a)))].filter((n) => n !== 'total');
    const breakdown: Record<string, number> = {};
    for (const n of names) breakdown[n] = round(median(activities.map((a) => a[n] ?? 0)), 3);
    breakdown.other = round(median(activities.map((a) => a.total! - names.reduce((t, n) => t + (a[n] ?? 0), 0))), 3);
    return { bareSeconds: times.bare, orchestratedSeconds: times.orchestrated, handSeconds: times.hand, ratio, handRatio, ratioOfMedians, orchestratedActivitySeconds: breakdown };
  }

  private async repository(): Promise<Repository> {
    const r = this.stack.repository;
    if (r.kind !== 's3') throw new Error('the repository is not S3: the run has no prefix of its own to delete');
    this.repo ??= await openRepository({ ...this.stack, repository: { ...r, prefix: this.prefix } });
    return this.repo;
  }

  /** Every restored copy holds what the source holds: each table, row for row. */
  private async checkRestored(source: string, copies: string[]): Promise<void> {
    const tables = (await this.sql<{ t: string }>(source, "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).map((r) => r.t);
    const q = `SELECT ${tables.map((t) => `(SELECT count(*) FROM ${t})::text`).join(" || '/' || ")} AS n`;
    const want = (await this.sql<{ n: string }>(source, q))[0]!.n;
    for (const c of copies) {
      const got = (await this.sql<{ n: string }>(c, q))[0]!.n;
      if (got !== want) throw new Error(`restored database ${c} has rows ${got}, the source ${source} has ${want}`);
    }
    say(`restored copies match the source row for row (${want})`);
  }

  /** What to undo if the run is interrupted now: the worker process, the restored copies, the dump file. */
  private inProgress?: () => Promise<void>;
  private closed = false;

  /** On SIGINT/SIGTERM: stops the worker, drops the copies, deletes the run's objects. */
  async abort(): Promise<void> {
    await this.inProgress?.().catch(() => undefined);
    await this.close();
  }

  /** Deletes everything this run wrote to the repository, and closes connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      const r = await this.repository();
      const keys: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        for (const e of await r.list(dir)) {
          const p = dir ? `${dir}/${e.name}` : e.name;
          if (e.dir) await walk(p);
          else keys.push(p);
        }
      };
      await walk('');
      await r.delete(keys);
      if (keys.length) say(`deleted the run's ${keys.length} repository objects under ${this.prefix}/`);
    } catch (err) {
      say(`could not clean up the repository prefix ${this.prefix}: ${(err as Error).message}`);
    } finally {
      await this.temporal?.connection.close();
    }
  }
}

type Stamp = { seconds?: unknown; nanos?: number | null } | null | undefined;
const ms = (t: Stamp) => (t ? Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6 : 0);

/** Seconds from start to completion of each activity type in a workflow's history, summed per type. */
export function activitySeconds(history: { events?: unknown[] | null }): Record<string, number> {
  const types = new Map<string, string>();
  const started = new Map<string, number>();
  const out: Record<string, number> = {};
  for (const e of (history.events ?? []) as Array<Record<string, unknown>>) {
    const id = String(e.eventId);
    const at = ms(e.eventTime as Stamp);
    const sched = e.activityTaskScheduledEventAttributes as { activityType?: { name?: string } } | undefined;
    const start = e.activityTaskStartedEventAttributes as { scheduledEventId?: unknown } | undefined;
    const done = e.activityTaskCompletedEventAttributes as { scheduledEventId?: unknown } | undefined;
    if (sched) types.set(id, sched.activityType?.name ?? '?');
    if (start) started.set(String(start.scheduledEventId), at);
    if (done) {
      const sid = String(done.scheduledEventId);
      const name = types.get(sid) ?? '?';
      out[name] = round((out[name] ?? 0) + (at - (started.get(sid) ?? at)) / 1000, 3);
    }
  }
  return out;
}
