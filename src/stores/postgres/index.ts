import type { Readable } from 'node:stream';
import { Client } from 'pg';
import { resolveSecret, type TargetConfig } from '../../config';
import { LifeboatError } from '../../errors';
import { toolInput, toolOutput, toolText, type ToolRun } from '../child';
import type { BackupItem, MarkerCount, ProbeResult, Store, StoreContext } from '../types';
import { withPassfile } from './passfile';
import { parsePostgresSettings, toolPath, type PostgresSettings } from './settings';

const MARKER_TABLE = 'lifeboat_drill_markers';

/** SQLSTATE classes that retrying cannot fix. */
/** What pg_dump/pg_restore print for failures that a retry cannot fix. */
const PERMANENT_TOOL_ERRORS = /does not exist|password authentication failed|permission denied|no pg_hba\.conf entry|server version mismatch|input file does not appear to be a valid archive/;

const PERMANENT_SQLSTATES = new Set(['28000', '28P01', '3D000', '42501', '42P01', '42601', '42704']);

export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly target: string;
  private readonly s: PostgresSettings;

  constructor(configFile: string, t: TargetConfig) {
    this.target = t.name;
    this.s = parsePostgresSettings(configFile, t);
  }

  private password(): Promise<string | undefined> {
    return this.s.password ? resolveSecret(this.s.password, `targets.${this.target}.password`) : Promise.resolve(undefined);
  }

  private async withClient<T>(database: string, fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ host: this.s.host, port: this.s.port, user: this.s.user, password: await this.password(), database });
    try {
      await c.connect();
    } catch (err) {
      throw this.describeConnectError(err, database);
    }
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  private describeConnectError(err: unknown, database: string): unknown {
    const code = (err as { code?: string }).code;
    const where = `postgres ${this.s.user}@${this.s.host}:${this.s.port}/${database} (target ${this.target})`;
    if (code === '28P01' || code === '28000') return new LifeboatError('AuthFailed', `${where} refused the login: ${(err as Error).message}; check targets.${this.target}.user and password`);
    if (code === '3D000') return new LifeboatError('DatabaseNotFound', `${where}: database does not exist`, true);
    if (code === 'ECONNREFUSED') return new LifeboatError('Unreachable', `${where} is not reachable (connection refused); is the server up?`, false);
    return err;
  }

  /** pg_dump/pg_restore with credentials from a passfile, never argv or a PGPASSWORD. */
  private async runTool<T>(ctx: StoreContext, tool: string, args: string[], fn: (run: ToolRun) => Promise<T>): Promise<T> {
    return withPassfile(this.s.host, this.s.port, this.s.user, await this.password(), (passfile) =>
      fn({
        tool,
        path: toolPath(this.s, tool),
        args: ['--host', this.s.host, '--port', String(this.s.port), '--username', this.s.user, '--no-password', ...args],
        env: passfile ? { PGPASSFILE: passfile } : {},
        signal: ctx.signal,
      }),
    );
  }

  async probe(ctx: StoreContext): Promise<ProbeResult> {
    const serverVersion = await this.withClient(this.s.maintenanceDatabase, async (c) => (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v);
    const tools: Record<string, string> = {};
    for (const tool of ['pg_dump', 'pg_restore']) {
      const out = await toolText({ tool, path: toolPath(this.s, tool), args: ['--version'], signal: ctx.signal });
      tools[tool] = /(\d+(?:\.\d+)*)/.exec(out)?.[1] ?? out.trim();
    }
    const serverMajor = parseInt(serverVersion, 10);
    const dumpMajor = parseInt(tools.pg_dump ?? '0', 10);
    if (dumpMajor < serverMajor) {
      throw new LifeboatError(
        'ToolTooOld',
        `pg_dump ${tools.pg_dump} is older than the server of target ${this.target} (PostgreSQL ${serverVersion}) and cannot dump it; install postgresql-client-${serverMajor} or set targets.${this.target}.binDir`,
      );
    }
    return { serverVersion, tools, capabilities: ['pg_dump-custom'] };
  }

  async items(): Promise<BackupItem[]> {
    return this.s.databases.map((db) => ({ item: `database:${db}`, name: db, file: `${db}.dump`, format: 'pg_dump-custom' }));
  }

  async backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    ctx.progress({ stage: 'dump', item: item.item });
    await this.runTool(ctx, 'pg_dump', ['--format=custom', '--dbname', item.name], (run) => sink(toolOutput(run)));
  }

  async restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable): Promise<void> {
    await this.drop(ctx, into);
    await this.withClient(this.s.maintenanceDatabase, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(into)} TEMPLATE template0`));
    ctx.progress({ stage: 'restore', item: item.item });
    await this.runTool(ctx, 'pg_restore', ['--exit-on-error', '--dbname', into], (run) => toolInput(run, source));
  }

  drillName(): string {
    return this.s.drillDatabase;
  }

  scratchName(token: string): string {
    return `lifeboat_drill_${token}`;
  }

  async drop(ctx: StoreContext, name: string): Promise<void> {
    ctx.progress({ stage: 'drop', item: name });
    // WITH (FORCE) terminates the database's sessions first (PostgreSQL 13+).
    await this.withClient(this.s.maintenanceDatabase, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
  }

  async seedMarkers(_ctx: StoreContext, name: string, count: number, nonce: string): Promise<void> {
    await this.withClient(name, async (c) => {
      await c.query(
        `CREATE TABLE IF NOT EXISTS ${MARKER_TABLE} (nonce text NOT NULL, seq integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (nonce, seq))`,
      );
      await c.query(`INSERT INTO ${MARKER_TABLE} (nonce, seq) SELECT $1, g FROM generate_series(1, $2::integer) AS g ON CONFLICT DO NOTHING`, [nonce, count]);
    });
  }

  async countMarkers(_ctx: StoreContext, name: string, nonce: string): Promise<MarkerCount> {
    return this.withClient(name, async (c) => {
      const exists = await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [MARKER_TABLE]);
      if (!exists.rows[0]?.ok) return { found: [] };
      const r = await c.query<{ seq: number }>(`SELECT seq FROM ${MARKER_TABLE} WHERE nonce = $1 ORDER BY seq`, [nonce]);
      return { found: r.rows.map((row) => row.seq) };
    });
  }

  isPermanent(err: unknown): boolean {
    if (err instanceof LifeboatError) return err.permanent || (err.type === 'ToolFailed' && PERMANENT_TOOL_ERRORS.test(err.message));
    const code = (err as { code?: string }).code;
    return code !== undefined && PERMANENT_SQLSTATES.has(code);
  }
}
