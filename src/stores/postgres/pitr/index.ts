import { setTimeout as sleep } from 'node:timers/promises';
import type { PitrBackup, PitrBackupType, PitrCatalog } from '../../../domain/pitr';
import { recoverableWindow } from '../../../domain/pitr';
import { LifeboatError, messageOf } from '../../../errors';
import type { StoreContext } from '../../types';
import { PgConn } from '../conn';
import { archiveCommand, pitrPaths, repoUrl, writeConfig, type PitrPaths, type PitrSpec } from './conf';
import { parseInfo, type StanzaInfo } from './info';
import { pgbackrest, progressPercent, stopLeftovers, type PgbackrestRunner } from './run';
import { archiverStatus, serverHook, waitWritable } from './server';

export { archiveCommand, pitrPaths, repoUrl, type PitrSpec } from './conf';

/**
 * Point-in-time recovery of one postgres target with pgBackRest: lifeboat
 * writes the configuration, runs the commands as the data directory's owner
 * and reads their results; pgBackRest does the archiving, the backups and
 * the restores. Every method is safe to run again after a crash.
 */
export class PitrEngine {
  readonly target: string;
  readonly paths: PitrPaths;
  readonly conn: PgConn;

  constructor(readonly spec: PitrSpec) {
    this.target = spec.target;
    this.paths = pitrPaths(spec);
    this.conn = new PgConn(spec.target, spec.pg);
  }

  /**
   * Runs a pgBackRest command; while another run holds a lock it needs (an
   * asynchronous archive-push holds the archive lock for a moment, another
   * backup the backup lock for long), it waits and tries again, up to
   * lockWaitSeconds, saying so in its progress.
   */
  private async locked(ctx: StoreContext, r: PgbackrestRunner, args: string[], onLine?: (text: string) => void): Promise<string> {
    const deadline = Date.now() + this.spec.pitr.lockWaitSeconds * 1000;
    for (let wait = 500; ; wait = Math.min(wait * 2, 15_000)) {
      try {
        return await pgbackrest(r, args, { signal: ctx.signal, ...(onLine ? { onLine } : {}) });
      } catch (err) {
        if ((err as LifeboatError).type !== 'PitrLockBusy' || Date.now() > deadline || ctx.signal.aborted) throw err;
        ctx.progress({ stage: 'waiting for lock', item: this.target, detail: messageOf(err).slice(0, 300) });
        await sleep(wait, undefined, { signal: ctx.signal });
      }
    }
  }

  /** Writes the config (if it changed) and says how to run pgBackRest. Idempotent. */
  async runner(): Promise<PgbackrestRunner> {
    const { owner } = await writeConfig(this.spec);
    return { target: this.target, paths: this.paths, owner };
  }

  /**
   * Writes the configuration, creates the stanza (pgBackRest's stanza-create
   * is idempotent) and, with `check`, proves archiving works end to end
   * (pgbackrest check switches a WAL segment and waits for it in the
   * repository). Refuses early, naming the fix, when the server does not archive.
   */
  async setup(ctx: StoreContext, o: { check: boolean }): Promise<{ config: string; archiveCommand: string; repository: string }> {
    const r = await this.runner();
    const server = await this.conn.withClient(this.spec.pg.maintenanceDatabase, async (c) => {
      const q = await c.query<{ name: string; setting: string }>("SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_command', 'wal_level')");
      return Object.fromEntries(q.rows.map((x) => [x.name, x.setting])) as Record<string, string>;
    });
    const want = archiveCommand(this.spec);
    if (server.archive_mode === 'off' || server.wal_level === 'minimal' || !server.archive_command?.includes(`--config=${this.paths.config}`)) {
      throw new LifeboatError(
        'PitrNotArchiving',
        `the server of target ${this.target} does not archive its WAL into this target's pgBackRest repository (wal_level=${server.wal_level}, archive_mode=${server.archive_mode}, archive_command=${server.archive_command || "''"}); set in postgresql.conf: wal_level = replica, archive_mode = on, archive_command = '${want}', then restart the server`,
        true,
      );
    }
    ctx.progress({ stage: 'stanza-create', item: this.target });
    await this.locked(ctx, r, ['--log-level-console=warn', 'stanza-create']);
    if (o.check) {
      ctx.progress({ stage: 'check', item: this.target });
      await this.locked(ctx, r, ['--log-level-console=warn', 'check']);
    }
    return { config: this.paths.config, archiveCommand: want, repository: repoUrl(this.spec) };
  }

  async info(ctx: StoreContext): Promise<StanzaInfo> {
    const r = await this.runner();
    return parseInfo(await pgbackrest(r, ['--output=json', 'info'], { signal: ctx.signal }), this.target);
  }

  /**
   * Takes a backup of `type`, heartbeating pgBackRest's percentage. `token`
   * (stable across retries of one run) marks the backup's processes: a retry
   * first stops what an attempt on a dead worker left running, and pgBackRest
   * then resumes that aborted backup instead of starting over. While another
   * run holds the stanza's lock, it waits (up to lockWaitSeconds).
   */
  async backup(ctx: StoreContext, type: PitrBackupType, token: string): Promise<PitrBackup> {
    const r = await this.runner();
    const mark = `lifeboat-run=${token}`;
    const stopped = await stopLeftovers(`--annotation=${mark}`);
    if (stopped) ctx.log.warn(`stopped ${stopped} pgBackRest process(es) an earlier attempt left running; the backup resumes`, { target: this.target });
    await this.locked(ctx, r, ['--log-level-console=detail', `--type=${type}`, `--annotation=${mark}`, 'backup'], (text) => {
      const pct = progressPercent(text);
      if (pct !== undefined) ctx.progress({ stage: `backup ${type}`, item: this.target, percent: pct });
    });
    const info = await this.info(ctx);
    const mine = info.backups.filter((b) => b.annotations['lifeboat-run'] === token).at(-1);
    if (!mine) throw new LifeboatError('ToolFailed', `pgbackrest backup of target ${this.target} ended, but pgbackrest info lists no backup annotated ${mark}`, false);
    return mine;
  }

  /** `pgbackrest verify`: reads every backup file and WAL segment in the repository and checks them. Read-only. */
  async verify(ctx: StoreContext): Promise<string> {
    const r = await this.runner();
    ctx.progress({ stage: 'verify', item: this.target });
    const out = await pgbackrest(r, ['--log-level-console=info', '--output=text', 'verify'], { signal: ctx.signal });
    return out.split('\n').filter((l) => /INFO: (stanza|archiveId|backup|  )/.test(l) || /results/.test(l)).slice(-10).join('\n').trim();
  }

  /** `pgbackrest expire`: applies the retention (from lifeboat's) to backups and WAL. Idempotent. */
  async expire(ctx: StoreContext): Promise<string[]> {
    const r = await this.runner();
    const out = await this.locked(ctx, r, ['--log-level-console=info', 'expire']);
    return [...out.matchAll(/expire (?:full|diff|incr)? ?backup (?:set:? )?([0-9F_DI-]+)/g)].map((m) => m[1]!);
  }

  /** The stanza as lifeboat's catalog keeps it: backups, archive, archiver, recoverable window. Read-only. */
  async catalog(ctx: StoreContext): Promise<PitrCatalog> {
    const info = await this.info(ctx);
    let archiver;
    try {
      archiver = await archiverStatus(this.conn, this.spec.pg.maintenanceDatabase, info.archive?.max);
    } catch (err) {
      ctx.log.warn(`the archiver of target ${this.target} could not be read; the window ends at the newest backup`, { error: messageOf(err) });
    }
    return {
      target: this.target,
      stanza: this.target,
      repository: repoUrl(this.spec),
      refreshedAt: new Date().toISOString(),
      ...(info.serverVersion ? { serverVersion: info.serverVersion } : {}),
      backups: info.backups,
      archive: info.archive ? { min: info.archive.min, max: info.archive.max } : null,
      window: recoverableWindow(info.backups, archiver),
      ...(archiver ? { archiver } : {}),
    };
  }

  /** Stops or starts the server (hooks, or pg_ctl). Idempotent. */
  async server(ctx: StoreContext, phase: 'stopServer' | 'startServer', context: Record<string, string>): Promise<string[]> {
    const r = await this.runner();
    return serverHook(ctx, this.spec, r.owner, phase, context);
  }

  /**
   * Restores the data directory in place (`--delta`: files that match are
   * kept, so a retry after a crash resumes), to `targetTime` or, without one,
   * to the end of the archive; the server promotes once it gets there. The
   * server must be stopped: pgBackRest refuses otherwise.
   */
  async restoreInPlace(ctx: StoreContext, targetTime: string | undefined): Promise<void> {
    const r = await this.runner();
    await stopLeftovers(`--pg1-path=${this.spec.pitr.dataDir}`);
    const args = ['--log-level-console=detail', '--delta', `--pg1-path=${this.spec.pitr.dataDir}`];
    if (targetTime) args.push('--type=time', `--target=${targetTime}`, '--target-action=promote');
    else args.push('--type=default');
    await pgbackrest(r, [...args, 'restore'], {
      signal: ctx.signal,
      onLine: (text) => {
        const pct = progressPercent(text);
        if (pct !== undefined) ctx.progress({ stage: 'restore', item: this.target, percent: pct });
      },
    });
  }

  /** Waits for the restored server's recovery to end and for it to take writes. */
  async waitWritable(ctx: StoreContext, timeoutSeconds: number): Promise<string | null> {
    return waitWritable(ctx, this.conn, this.spec.pg.maintenanceDatabase, timeoutSeconds);
  }
}
