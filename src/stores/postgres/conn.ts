import { addAbortListener } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { resolveSecret } from '../../config';
import { LifeboatError } from '../../errors';
import { toolText, type ToolRun } from '../child';
import type { StoreContext } from '../types';
import { withPassfile } from './passfile';
import { toolPath, type PostgresSettings } from './settings';

/** How the Postgres store reaches its server: SQL connections and the client tools. */
export class PgConn {
  constructor(
    readonly target: string,
    readonly s: PostgresSettings,
  ) {}

  /** `host:port`, for messages. */
  get server(): string {
    return `${this.s.host}:${this.s.port}`;
  }

  private password(): Promise<string | undefined> {
    return this.s.password ? resolveSecret(this.s.password, `targets.${this.target}.password`) : Promise.resolve(undefined);
  }

  /**
   * Runs `fn` with a session on `database`. With a `signal`, a cancel stops
   * the session's work on the server too: the statement that runs is
   * cancelled (as Ctrl-C in psql does) and the session closed, so no further
   * statement runs, and a long check or ALTER does not hold up a cancelled run.
   */
  async withClient<T>(database: string, fn: (c: Client) => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const c = new Client({ host: this.s.host, port: this.s.port, user: this.s.user, password: await this.password(), database });
    try {
      await c.connect();
    } catch (err) {
      throw this.describeConnectError(err, database);
    }
    const listening = signal && addAbortListener(signal, () => void this.cancelSession(c));
    try {
      return await fn(c);
    } finally {
      listening?.[Symbol.dispose]();
      await c.end().catch(() => undefined);
    }
  }

  /**
   * Cancels what `c`'s session runs (pg_cancel_backend, from a session of its
   * own), then closes it. The close comes within 5 s whatever the server does:
   * a server that does not answer must not keep a cancelled run waiting.
   */
  private async cancelSession(c: Client): Promise<void> {
    const pid = (c as unknown as { processID?: number }).processID;
    if (pid) {
      const asked = this.withClient(this.s.maintenanceDatabase, (k) => k.query('SELECT pg_cancel_backend($1)', [pid])).catch(() => undefined);
      await Promise.race([asked, sleep(5_000, undefined, { ref: false })]);
    }
    await c.end().catch(() => undefined);
  }

  private describeConnectError(err: unknown, database: string): unknown {
    const code = (err as { code?: string }).code;
    const where = `postgres ${this.s.user}@${this.server}/${database} (target ${this.target})`;
    if (code === '28P01' || code === '28000') return new LifeboatError('AuthFailed', `${where} refused the login: ${(err as Error).message}; check targets.${this.target}.user and password`);
    if (code === '3D000') return new LifeboatError('DatabaseNotFound', `${where}: database does not exist`, true);
    if (code === 'ECONNREFUSED') return new LifeboatError('Unreachable', `${where} is not reachable (connection refused); is the server up?`, false);
    return err;
  }

  /**
   * A client tool with credentials from a passfile, never argv or a
   * PGPASSWORD. Its sessions carry a unique application_name: when the
   * attempt fails or is cancelled, whatever session of it the server still
   * holds is terminated before the next attempt starts.
   */
  async runTool<T>(ctx: StoreContext, tool: string, args: string[], fn: (run: ToolRun) => Promise<T>): Promise<T> {
    const appName = `lifeboat ${tool} ${randomBytes(4).toString('hex')}`;
    try {
      return await withPassfile(this.s.host, this.s.port, this.s.user, await this.password(), (passfile) =>
        fn({
          tool,
          path: toolPath(this.s, tool),
          args: ['--host', this.s.host, '--port', String(this.s.port), '--username', this.s.user, '--no-password', ...args],
          env: { PGAPPNAME: appName, ...(passfile ? { PGPASSFILE: passfile } : {}) },
          signal: ctx.signal,
          install: `Debian: postgresql-client-N for the server's major N; or set targets.${this.target}.binDir`,
        }),
      );
    } catch (err) {
      await this.terminateSessions(appName).catch((e: unknown) => ctx.log.warn(`could not end the sessions of a failed ${tool}`, { error: String(e) }));
      throw err;
    }
  }

  /** Ends the server sessions a failed tool left behind (none, usually: the tool has exited). */
  private async terminateSessions(appName: string): Promise<void> {
    await this.withClient(this.s.maintenanceDatabase, (c) => c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()', [appName]));
  }

  /** A tool's version (`15.18`) and the path it was run from. */
  async toolVersion(signal: AbortSignal, tool: string): Promise<{ version: string; path: string }> {
    const path = toolPath(this.s, tool);
    const out = await toolText({ tool, path, args: ['--version'], signal });
    return { version: /(\d+(?:\.\d+)*)/.exec(out)?.[1] ?? out.trim(), path };
  }
}
