import { setTimeout as wait } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ArchiverStatus } from '../../../domain/pitr';
import { walSegment } from '../../../domain/pitr';
import { LifeboatError } from '../../../errors';
import { toolText } from '../../child';
import { hookName, runHook } from '../../hooks';
import type { StoreContext } from '../../types';
import { PgConn } from '../conn';
import { toolPath } from '../settings';
import type { PitrSpec } from './conf';
import { pitrPaths } from './conf';
import { asOwner } from './run';

/** Waits `ms`, or less when `signal` aborts (at once if it already has); never rejects: callers check the signal. */
const sleep = (ms: number, signal: AbortSignal) => wait(ms, undefined, { signal }).catch(() => undefined);

/** The server's archiver (pg_stat_archiver) and, given the repository's newest segment, whether its last segment is there. */
export async function archiverStatus(conn: PgConn, database: string, repositoryMax: string | undefined): Promise<ArchiverStatus> {
  const r = await conn.withClient(database, (c) =>
    c.query<{ w: string | null; t: Date | null; fw: string | null; ft: Date | null }>('SELECT last_archived_wal AS w, last_archived_time AS t, last_failed_wal AS fw, last_failed_time AS ft FROM pg_stat_archiver'),
  );
  const row = r.rows[0]!;
  const seg = row.w ? walSegment(row.w) : undefined;
  return {
    lastArchivedWal: row.w,
    lastArchivedTime: row.t ? row.t.toISOString() : null,
    lastFailedWal: row.fw,
    lastFailedTime: row.ft ? row.ft.toISOString() : null,
    // Segment names order by timeline, then position: the repository holds every segment up to its newest.
    inRepository: !!seg && !!repositoryMax && seg <= repositoryMax,
  };
}

/**
 * Whether the archiver is done with `wal` by its archive_status file: `.done`
 * once archived; neither `.ready` nor `.done` once archived and recycled (a
 * completed segment gets its `.ready` as it is switched). pg_stat_archiver
 * alone cannot say: the `.backup` file of a backup is archived after the
 * segment that follows it. Needs pg_monitor (or superuser); false without.
 */
async function archivedByStatus(conn: PgConn, database: string, wal: string): Promise<boolean> {
  try {
    return await conn.withClient(database, async (c) => {
      const r = await c.query<{ name: string }>("SELECT name FROM pg_ls_archive_statusdir() WHERE name IN ($1 || '.ready', $1 || '.done')", [wal]);
      return r.rows.length > 0 ? r.rows.some((x) => x.name.endsWith('.done')) : true;
    });
  } catch {
    return false;
  }
}

/** The server's clock now, to the microsecond, in UTC (ISO 8601). */
export async function serverNow(conn: PgConn, database: string): Promise<string> {
  const r = await conn.withClient(database, (c) => c.query<{ t: string }>(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`));
  return r.rows[0]!.t;
}

/**
 * Writes a commit record and closes the current WAL segment (pg_switch_wal),
 * then waits until the archiver has archived it, so everything committed
 * before the call is in the repository and any time before it is reachable. Returns the segment. Fails (retryably) when archiving does not
 * keep up within `waitSeconds`, naming the archiver's last failure.
 */
export async function switchAndWaitArchived(ctx: StoreContext, conn: PgConn, database: string, waitSeconds: number): Promise<{ wal: string; archivedAt: string }> {
  const wal = await conn.withClient(database, async (c) => {
    // An empty transaction with an id writes a commit record stamped now: recovery to a time
    // needs a commit after its target to know it got there, also when nothing was written since.
    await c.query('SELECT txid_current()');
    const r = await c.query<{ w: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS w');
    return r.rows[0]!.w;
  });
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    ctx.progress({ stage: 'wait for archive', item: wal });
    const s = await archiverStatus(conn, database, undefined);
    const last = s.lastArchivedWal ? walSegment(s.lastArchivedWal) : undefined;
    if ((last && last >= wal) || (await archivedByStatus(conn, database, wal))) return { wal, archivedAt: s.lastArchivedTime ?? new Date().toISOString() };
    if (Date.now() > deadline || ctx.signal.aborted) {
      throw new LifeboatError(
        'ArchiveTimeout',
        `WAL segment ${wal} of target ${conn.target} was not archived within ${waitSeconds}s (last archived: ${s.lastArchivedWal ?? 'none'}; last failure: ${s.lastFailedWal ?? 'none'} at ${s.lastFailedTime ?? '-'}); check archive_command and the server log`,
        false,
      );
    }
    await sleep(500, ctx.signal);
  }
}

/** Waits until the server answers, has left recovery and takes a write; returns the last replayed transaction's time. */
export async function waitWritable(ctx: StoreContext, conn: PgConn, database: string, timeoutSeconds: number, failed?: () => string | undefined): Promise<string | null> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let last = '';
  while (!ctx.signal.aborted) {
    const why = failed?.();
    if (why) throw new LifeboatError('RecoveryFailed', why, true);
    try {
      const r = await conn.withClient(database, async (c) => {
        const rec = await c.query<{ r: boolean; t: Date | null }>('SELECT pg_is_in_recovery() AS r, pg_last_xact_replay_timestamp() AS t');
        if (rec.rows[0]!.r) return { recovering: true as const, t: rec.rows[0]!.t };
        await c.query('SELECT txid_current()'); // assigns a transaction id: fails while read-only
        return { recovering: false as const, t: rec.rows[0]!.t };
      });
      if (!r.recovering) return r.t ? r.t.toISOString() : null;
      last = `still recovering (replayed up to ${r.t?.toISOString() ?? 'nothing yet'})`;
    } catch (err) {
      last = (err as Error).message;
    }
    ctx.progress({ stage: 'recovery', item: last });
    if (Date.now() > deadline) throw new LifeboatError('RecoveryTimeout', `the server of target ${conn.target} did not finish recovery and take writes within ${timeoutSeconds}s (last: ${last})`, false);
    await sleep(1000, ctx.signal);
  }
  throw new LifeboatError('Cancelled', 'cancelled while waiting for recovery', false);
}

/** Runs a pg_ctl command on a data directory as its owner. */
export async function pgCtl(spec: Pick<PitrSpec, 'pg' | 'target'>, owner: { uid: number; gid: number }, dataDir: string, args: string[], signal: AbortSignal): Promise<string> {
  const path = toolPath(spec.pg, 'pg_ctl');
  return toolText({ tool: 'pg_ctl', ...asOwner(owner, 'pg_ctl', path, ['-D', dataDir, ...args], dataDir), signal, install: 'Debian: postgresql-N' });
}

/** The postmaster running on a data directory: its pid file names a live postgres process. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /postgres|postmaster/.test(argv) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function postmasterRunning(dataDir: string): boolean {
  return postmasterPid(dataDir) !== undefined;
}

type Phase = 'stopServer' | 'startServer';

/**
 * Stops or starts the target's server: the configured hooks, or pg_ctl as the
 * data directory's owner. Idempotent: stopping a stopped server and starting a
 * running one do nothing. Returns what ran, for the saga's steps.
 */
export async function serverHook(ctx: StoreContext, spec: PitrSpec, owner: { uid: number; gid: number }, phase: Phase, context: Record<string, string>): Promise<string[]> {
  const hooks = spec.pitr[phase];
  const ran: string[] = [];
  if (hooks?.length) {
    for (const h of hooks) {
      ctx.progress({ stage: phase, item: hookName(h) });
      await runHook(h, context, ctx.signal);
      ran.push(hookName(h));
    }
    return ran;
  }
  const dir = spec.pitr.dataDir;
  if (phase === 'stopServer') {
    if (!postmasterRunning(dir)) return ['server already stopped'];
    await pgCtl(spec, owner, dir, ['stop', '-m', 'fast', '-w', '-t', '600'], ctx.signal);
    return [`pg_ctl -D ${dir} stop -m fast`];
  }
  if (postmasterRunning(dir)) return ['server already running'];
  const log = join(pitrPaths(spec).log, 'postgresql-restore.log');
  // -W: do not wait; recovery may take long, and waitWritable watches it with heartbeats.
  await pgCtl(spec, owner, dir, ['-l', log, 'start', '-W'], ctx.signal);
  return [`pg_ctl -D ${dir} start (log ${log})`];
}
