import type { Readable } from 'node:stream';
import type { TargetConfig } from '../../config';
import { LifeboatError, messageOf } from '../../errors';
import { toolInput, toolText, withToolOutput } from '../child';
import type { BackupItem, MarkerCount, ProbeResult, RestoreOptions, Store, StoreContext } from '../types';
import { PgConn } from './conn';
import { databaseFacts, readDatabaseFacts, readGlobalsRoles, serverFacts, shortVersion, type DatabaseFacts } from './facts';
import { dumpGlobals, globalsItem, GLOBALS_FORMAT, restoreGlobals, summarizeGlobals } from './globals';
import { listDump } from './inspect';
import { checkDatabase, major, type Findings } from './preflight';
import { GLOBALS, parsePostgresSettings, toolPath, type PostgresSettings } from './settings';
import { reassignRestored } from './owner';
import { sweepSpools, withSpool } from './spool';

const MARKER_TABLE = 'lifeboat_drill_markers';
const DUMP_FORMAT = 'pg_dump-custom';

/** What pg_dump/pg_restore print for failures that a retry cannot fix. */
const PERMANENT_TOOL_ERRORS = /does not exist|password authentication failed|permission denied|no pg_hba\.conf entry|server version mismatch|input file does not appear to be a valid archive/;

/** CREATE DATABASE of a name that exists. */
const DUPLICATE_DATABASE = '42P04';

/** SQLSTATEs that retrying cannot fix. */
const PERMANENT_SQLSTATES = new Set(['28000', '28P01', '3D000', '42501', '42P01', '42601', '42704']);

/**
 * A PostgreSQL server: the roles and tablespaces (item `globals`, first) and
 * each configured database (one custom-format dump each). Each dump is its
 * own snapshot: databases are not consistent with each other.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly target: string;
  private readonly s: PostgresSettings;
  private readonly conn: PgConn;

  constructor(configFile: string, t: TargetConfig) {
    this.target = t.name;
    this.s = parsePostgresSettings(configFile, t);
    this.conn = new PgConn(t.name, this.s);
  }

  async probe(ctx: StoreContext): Promise<ProbeResult> {
    const { serverVersion, readsPasswords } = await this.conn.withClient(this.s.maintenanceDatabase, async (c) => {
      const r = await c.query<{ v: string; p: boolean }>("SELECT current_setting('server_version') AS v, has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS p");
      return { serverVersion: r.rows[0]!.v, readsPasswords: r.rows[0]!.p };
    });
    const serverMajor = major(serverVersion);
    const tools: Record<string, string> = {};
    // The dumping tools must be at least as new as the server; pg_restore only reads what they wrote.
    const dumpers = this.s.globals ? ['pg_dump', 'pg_dumpall'] : ['pg_dump'];
    for (const tool of [...dumpers, 'pg_restore']) {
      const { version, path } = await this.conn.toolVersion(ctx.signal, tool);
      tools[tool] = version;
      if (dumpers.includes(tool) && major(version) < serverMajor) {
        throw new LifeboatError(
          'ToolTooOld',
          `${tool} ${version} (${path}) is older than the server of target ${this.target} (PostgreSQL ${shortVersion(serverVersion)} at ${this.conn.server}) and cannot dump it: ${tool} only dumps servers of its own major version or older. Install the PostgreSQL ${serverMajor} client tools on the worker (Debian/Ubuntu: postgresql-client-${serverMajor}) and, if they are not found in /usr/lib/postgresql/${serverMajor}/bin, set targets.${this.target}.binDir to their folder`,
        );
      }
    }
    if (this.s.globals && this.s.globalsRolePasswords && !readsPasswords) {
      throw new LifeboatError(
        'PermissionDenied',
        `user ${this.s.user} of target ${this.target} cannot read the roles' password hashes (pg_authid) that the globals backup includes: connect as a superuser, or set targets.${this.target}.globalsRolePasswords: false (roles are then restored without passwords), or globals: false`,
        true,
      );
    }
    const capabilities = [DUMP_FORMAT, ...(this.s.globals ? [GLOBALS_FORMAT] : []), ...(this.s.jobs > 1 ? [`pg_restore-jobs-${this.s.jobs}`] : [])];
    return { serverVersion, tools, capabilities };
  }

  /** The globals first (a restore creates the roles before the databases that name them), then each database with its facts. */
  async items(ctx?: StoreContext): Promise<BackupItem[]> {
    const signal = ctx?.signal ?? new AbortController().signal;
    const pgDump = (await this.conn.toolVersion(signal, 'pg_dump')).version;
    const items: BackupItem[] = this.s.globals ? [await globalsItem(this.conn, signal)] : [];
    for (const db of this.s.databases) {
      const { facts, size } = await this.conn.withClient(db, async (c) => ({
        facts: { ...(await databaseFacts(c)), pgDump } as DatabaseFacts,
        // The on-disk size: indexes and free space make it larger than a dump, but it is known before the dump starts.
        size: Number((await c.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n')).rows[0]!.n),
      }));
      items.push({ item: `database:${db}`, name: db, file: `${db}.dump`, format: DUMP_FORMAT, meta: { ...facts }, estimatedBytes: size });
    }
    return items;
  }

  async backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    ctx.progress({ stage: 'dump', item: item.item });
    if (item.format === GLOBALS_FORMAT) return dumpGlobals(this.conn, ctx, sink);
    // pg_dump's own compression off: its zlib would take a core from the dump; the pipeline compresses with zstd off the main thread.
    await this.conn.runTool(ctx, 'pg_dump', ['--format=custom', '--compress=0', '--dbname', item.name], (run) => withToolOutput(run, sink));
  }

  /**
   * Checks, without changing anything, that the items can be restored into
   * this server: the extensions each database needs are available (and
   * loaded), the roles its dump names exist (or come with a `globals` item
   * among `items`), pg_restore can read the dump. Read-only; throws a
   * permanent error listing every problem.
   */
  async preflight(ctx: StoreContext, items: BackupItem[], options: RestoreOptions = {}): Promise<void> {
    const databases = items.filter((i) => i.format !== GLOBALS_FORMAT);
    if (databases.length === 0) return;
    const server = await this.conn.withClient(this.s.maintenanceDatabase, serverFacts);
    const pgRestore = await this.conn.toolVersion(ctx.signal, 'pg_restore');
    const comingRoles = new Set(items.filter((i) => i.format === GLOBALS_FORMAT).flatMap((i) => readGlobalsRoles(i.meta)));
    const owner = this.ownerOf(options);
    const findings: Findings = { problems: [], warnings: [] };
    const ownerSetting = options.owner ? 'restore --owner' : `targets.${this.target}.owner`;
    if (owner && !server.roles.has(owner) && !comingRoles.has(owner)) {
      findings.problems.push({
        type: 'RoleMissing',
        message: `role '${owner}', which is to own the restored databases (${ownerSetting}), does not exist on the server: create it (CREATE ROLE ${owner} LOGIN), restore the target's globals first, or name another role`,
      });
    } else if (owner && server.roles.has(owner) && !(await this.conn.withClient(this.s.maintenanceDatabase, (c) => c.query<{ ok: boolean }>("SELECT pg_has_role(current_user, $1, 'MEMBER') AS ok", [owner]))).rows[0]?.ok) {
      // ALTER … OWNER TO needs membership in the new owner (a superuser has it): checked now, not after the restore.
      findings.problems.push({
        type: 'PermissionDenied',
        message: `${this.s.user} may not hand objects to role '${owner}' (${ownerSetting}): it is not a member of it. GRANT ${owner} TO ${this.s.user}, or connect as a superuser`,
      });
    }
    for (const item of databases) {
      const f = checkDatabase(item.name, readDatabaseFacts(item.meta), server, { noOwner: this.s.noOwner || owner !== undefined, noPrivileges: this.s.noPrivileges, pgRestore: pgRestore.version, pgRestorePath: pgRestore.path, comingRoles });
      findings.problems.push(...f.problems);
      findings.warnings.push(...f.warnings);
    }
    for (const w of findings.warnings) ctx.log.warn(w, { target: this.target });
    if (findings.problems.length) {
      const types = [...new Set(findings.problems.map((p) => p.type))];
      throw new LifeboatError(
        types.length === 1 ? types[0]! : 'PreflightFailed',
        `restore of target ${this.target} (PostgreSQL ${server.serverVersion} at ${this.conn.server}) cannot go ahead: ${findings.problems.map((p) => p.message).join('; ')}. ${databases.length === 1 ? `Database '${databases[0]!.name}' was left as it was` : 'The databases were left as they were'}`,
        true,
      );
    }
  }

  /** The role that owns what a restore creates: the restore's --owner, else the target's `owner`. */
  private ownerOf(options: RestoreOptions): string | undefined {
    return options.owner ?? this.s.owner;
  }

  async restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable, options: RestoreOptions = {}): Promise<void> {
    if (item.format === GLOBALS_FORMAT) return restoreGlobals(this.conn, ctx, into, source);
    const owner = this.ownerOf(options);
    try {
      if (this.s.globals && into === GLOBALS) {
        throw new LifeboatError('InvalidName', `database '${item.name}' of target ${this.target} cannot be restored as '${GLOBALS}', the name of the target's roles item; choose another name`, true);
      }
      await this.preflight(ctx, [item], options);
    } catch (err) {
      source.destroy();
      throw err;
    }
    const facts = { ...readDatabaseFacts(item.meta), ...(owner ? { owner } : {}) };
    // With an owner, objects are created by lifeboat's user (--no-owner) and handed to the owner afterwards.
    const noOwner = this.s.noOwner || owner !== undefined;
    const args = ['--exit-on-error', ...(noOwner ? ['--no-owner'] : []), ...(this.s.noPrivileges ? ['--no-acl'] : []), '--dbname', into];
    let created = false;
    const recreate = async () => {
      await this.recreate(ctx, into, facts, owner !== undefined, options.createOnly);
      created = options.createOnly === true;
    };
    try {
      if (this.s.jobs <= 1) {
        await recreate();
        ctx.progress({ stage: 'restore', item: item.item });
        await this.conn.runTool(ctx, 'pg_restore', args, (run) => toolInput(run, source));
      } else {
        // The whole artifact is read (and authenticated) into the spool before the database is dropped.
        const spool = { signal: ctx.signal, log: ctx.log, onBytes: (bytes: number) => ctx.progress({ stage: 'spool', item: item.item, bytes }) };
        await withSpool(this.s.spoolDir, `${this.target}-${into}`, source, spool, async (path) => {
          await recreate();
          ctx.progress({ stage: 'restore', item: item.item });
          await this.conn.runTool(ctx, 'pg_restore', ['--jobs', String(this.s.jobs), ...args, path], toolText);
        });
      }
      if (facts.extensions?.some((e) => e.name === 'timescaledb')) await this.conn.withClient(into, (c) => c.query('SELECT timescaledb_post_restore()'), ctx.signal);
      if (owner) {
        const n = await this.conn.withClient(into, (c) => reassignRestored(c, this.s.user, owner), ctx.signal);
        ctx.log.info(`database '${into}' and its ${n} objects are owned by '${owner}'`, { target: this.target });
      }
    } catch (err) {
      // A database this restore created (createOnly) holds part of the item at most: a failed restore into a new name leaves nothing.
      if (created) await this.drop(ctx, into).catch((e: unknown) => ctx.log.warn(`database '${into}', created by this failed restore, could not be dropped: ${messageOf(e)}`, { target: this.target }));
      throw err;
    }
  }

  /**
   * Drops `into` and creates it empty, owned as in the backup (unless noOwner) or by the restore's owner.
   * With `createOnly` nothing is dropped: an existing `into` is an `AlreadyExists` error.
   */
  private async recreate(ctx: StoreContext, into: string, facts: Partial<DatabaseFacts>, ownerGiven = false, createOnly = false): Promise<void> {
    if (!createOnly) await this.drop(ctx, into);
    await this.conn.withClient(this.s.maintenanceDatabase, async (c) => {
      let owner = '';
      if ((ownerGiven || !this.s.noOwner) && facts.owner) {
        // CREATE DATABASE … OWNER needs membership in that role (a superuser has it).
        const r = await c.query<{ ok: boolean }>("SELECT pg_has_role(current_user, oid, 'MEMBER') AS ok FROM pg_roles WHERE rolname = $1", [facts.owner]);
        if (r.rows[0]?.ok) owner = ` OWNER ${c.escapeIdentifier(facts.owner)}`;
        else ctx.log.warn(`database '${into}' is created owned by ${this.s.user}, not by '${facts.owner}' as in the backup: ${this.s.user} may not create databases for that role`, { target: this.target });
      }
      try {
        await c.query(`CREATE DATABASE ${c.escapeIdentifier(into)} TEMPLATE template0${owner}`);
      } catch (err) {
        if ((err as { code?: string }).code !== DUPLICATE_DATABASE) throw err;
        throw new LifeboatError('AlreadyExists', `database '${into}' already exists on ${this.conn.server}; it was left as it was`);
      }
    });
    const timescale = facts.extensions?.find((e) => e.name === 'timescaledb');
    if (timescale) {
      // Timescale's documented pg_restore procedure: the same extension version, restoring mode on.
      await this.conn.withClient(into, async (c) => {
        await c.query(`CREATE EXTENSION IF NOT EXISTS timescaledb VERSION ${c.escapeLiteral(timescale.version)}`);
        await c.query('SELECT timescaledb_pre_restore()');
      });
    }
  }

  /** A database dump (not the roles, which are server-wide) can be restored into a new database without dropping anything. */
  createsNew(item: BackupItem): boolean {
    return item.format === DUMP_FORMAT;
  }

  drillName(): string {
    return this.s.drillDatabase;
  }

  scratchName(token: string): string {
    return `lifeboat_drill_${token}`;
  }

  async drop(ctx: StoreContext, name: string): Promise<void> {
    // Roles are server-wide and never dropped by lifeboat; no database can be named `globals` while they are backed up.
    if (this.s.globals && name === GLOBALS) return;
    ctx.progress({ stage: 'drop', item: name });
    // WITH (FORCE) terminates the database's sessions first (PostgreSQL 13+).
    await this.conn.withClient(this.s.maintenanceDatabase, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
  }

  async seedMarkers(_ctx: StoreContext, name: string, count: number, nonce: string): Promise<void> {
    await this.conn.withClient(name, async (c) => {
      await c.query(
        `CREATE TABLE IF NOT EXISTS ${MARKER_TABLE} (nonce text NOT NULL, seq integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (nonce, seq))`,
      );
      await c.query(`INSERT INTO ${MARKER_TABLE} (nonce, seq) SELECT $1, g FROM generate_series(1, $2::integer) AS g ON CONFLICT DO NOTHING`, [nonce, count]);
    });
  }

  async countMarkers(_ctx: StoreContext, name: string, nonce: string): Promise<MarkerCount> {
    return this.conn.withClient(name, async (c) => {
      const exists = await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [MARKER_TABLE]);
      if (!exists.rows[0]?.ok) return { found: [] };
      const r = await c.query<{ seq: number }>(`SELECT seq FROM ${MARKER_TABLE} WHERE nonce = $1 ORDER BY seq`, [nonce]);
      return { found: r.rows.map((row) => row.seq) };
    });
  }

  /** A post-restore sanity query in `name` (default: the drill database), in a read-only transaction: true when its first value is true. */
  async check(ctx: StoreContext, name: string | undefined, query: string): Promise<boolean> {
    return this.conn.withClient(name ?? this.s.drillDatabase, async (c) => {
      await c.query('BEGIN READ ONLY');
      try {
        const r = await c.query({ text: query, rowMode: 'array' });
        return (r.rows[0] as unknown[] | undefined)?.[0] === true;
      } finally {
        await c.query('ROLLBACK');
      }
    }, ctx.signal);
  }

  async inspect(ctx: StoreContext, item: BackupItem, plaintext: Readable): Promise<string> {
    if (item.format === GLOBALS_FORMAT) return summarizeGlobals(plaintext);
    return item.format === DUMP_FORMAT ? listDump(ctx, toolPath(this.s, 'pg_restore'), plaintext) : 'no inspection for this format';
  }

  /** At worker start: the decrypted spools of --jobs restores whose worker died. */
  async sweep(): Promise<string[]> {
    return this.s.jobs > 1 ? sweepSpools(this.s.spoolDir) : [];
  }

  isPermanent(err: unknown): boolean {
    if (err instanceof LifeboatError) return err.permanent || (err.type === 'ToolFailed' && PERMANENT_TOOL_ERRORS.test(err.message));
    const code = (err as { code?: string }).code;
    return code !== undefined && PERMANENT_SQLSTATES.has(code);
  }
}
