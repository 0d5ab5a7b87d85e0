import { Context } from '@temporalio/activity';
import { targetOf, taskQueueOf, type Config } from '../config';
import { checkMarkers, MARKERS_PER_KIND, type MarkerResult } from '../domain/markers';
import { backupFor, outsideWindow, parseTargetTime, type PitrBackup, type PitrBackupType, type PitrCatalog, type PitrRestorePlan, type PitrTargetInfo } from '../domain/pitr';
import { LifeboatError, messageOf } from '../errors';
import { openRepository, type Repository } from '../repo';
import { openStore } from '../stores';
import { PostgresStore } from '../stores/postgres';
import { PitrEngine } from '../stores/postgres/pitr';
import { pitrSpec } from '../stores/postgres/pitr/rpo';
import { writePitrCatalog } from '../stores/postgres/pitr/catalog';
import { drillRestore, removeScratch, scratchOf } from '../stores/postgres/pitr/scratch';
import { serverNow, switchAndWaitArchived } from '../stores/postgres/pitr/server';
import type { StoreContext } from '../stores/types';
import { inActivity } from './context';

export { pitrSpec };

/** A store for the same target that talks to another server (a drill's scratch copy on a loopback port). */
function storeAt(config: Config, target: string, port: number): PostgresStore {
  const t = targetOf(config, target);
  return new PostgresStore(config.file, { ...t, settings: { ...t.settings, host: '127.0.0.1', port } });
}

/**
 * PITR activities: thin adapters from Temporal to the PitrEngine. The ones
 * that run pgBackRest or touch the data directory run on the target's task
 * queue (the worker beside the database); the workflows route them there.
 */
export function createPitrActivities(config: Config) {
  let repoPromise: Promise<Repository> | undefined;
  const repo = () => (repoPromise ??= openRepository(config));
  const engine = (target: string) => new PitrEngine(pitrSpec(config, target));
  const store = (target: string) => openStore(config, target);

  async function refreshCatalog(ctx: StoreContext, e: PitrEngine): Promise<PitrCatalog> {
    const c = await e.catalog(ctx);
    await writePitrCatalog(await repo(), c);
    return c;
  }

  return {
    /** The target's task queue and stanza; refuses targets without `pitr:`. Runs on any worker. */
    async pitrTarget(input: { target: string }): Promise<PitrTargetInfo> {
      return inActivity(null, async () => {
        pitrSpec(config, input.target);
        return { target: input.target, taskQueue: taskQueueOf(config, input.target), stanza: input.target };
      });
    },

    /** Writes pgbackrest.conf, stanza-create, and with `check` proves archiving. Idempotent. */
    async pitrSetup(input: { target: string; check: boolean }): Promise<{ config: string; archiveCommand: string; repository: string }> {
      const e = engine(input.target);
      return inActivity(store(input.target), (ctx) => e.setup(ctx, { check: input.check }));
    },

    /** One pgBackRest backup, resumed after a crash (the token is the workflow's). */
    async pitrBackup(input: { target: string; type: PitrBackupType; token: string }): Promise<PitrBackup & { ranOn: string; seconds: number }> {
      const e = engine(input.target);
      return inActivity(store(input.target), async (ctx) => {
        const started = performance.now();
        const b = await e.backup(ctx, input.type, input.token);
        return { ...b, ranOn: Context.current().info.taskQueue, seconds: Math.round((performance.now() - started) / 10) / 100 };
      });
    },

    async pitrExpire(input: { target: string }): Promise<{ expired: string[] }> {
      const e = engine(input.target);
      return inActivity(store(input.target), async (ctx) => ({ expired: await e.expire(ctx) }));
    },

    /** pgbackrest info into lifeboat's catalog (`<target>/pitr.json`). Idempotent. */
    async pitrCatalog(input: { target: string }): Promise<PitrCatalog> {
      const e = engine(input.target);
      return inActivity(store(input.target), (ctx) => refreshCatalog(ctx, e));
    },

    async pitrVerify(input: { target: string }): Promise<{ summary: string }> {
      const e = engine(input.target);
      return inActivity(store(input.target), async (ctx) => ({ summary: await e.verify(ctx) }));
    },

    /**
     * The plan of a restore to a time: closes the current WAL segment first
     * (when the server answers) so the window reaches now, then refuses a
     * time outside the window, naming it. Changes nothing else.
     */
    async pitrPlanRestore(input: { target: string; toTime?: string; latest?: boolean }): Promise<PitrRestorePlan> {
      const e = engine(input.target);
      return inActivity(store(input.target), async (ctx) => {
        if (!input.latest && !input.toTime) throw new LifeboatError('ConfigError', 'a PITR restore needs a time (--to-time) or --to-latest');
        let t: ReturnType<typeof parseTargetTime> | undefined;
        try {
          t = input.toTime ? parseTargetTime(input.toTime) : undefined;
        } catch (err) {
          throw new LifeboatError('ConfigError', messageOf(err));
        }
        await switchAndWaitArchived(ctx, e.conn, e.spec.pg.maintenanceDatabase, e.spec.pitr.archiveWaitSeconds).catch((err: unknown) =>
          ctx.log.warn(`could not close the current WAL segment before planning (${messageOf(err)}); the window ends at what is archived`, { target: input.target }),
        );
        const c = await refreshCatalog(ctx, e);
        if (!c.window) throw new LifeboatError('BackupNotFound', `target ${input.target} has no PITR backup in ${c.repository}; take one first: lifeboat backup ${input.target} --pitr full`);
        const window = c.window;
        if (t) {
          const why = outsideWindow(t.ms, window);
          if (why) {
            throw new LifeboatError(
              'OutsideWindow',
              `target ${input.target} cannot be restored to ${t.iso}: ${why}. The recoverable window is ${window.earliest} to ${window.latest}. Nothing was stopped or changed`,
              true,
            );
          }
        }
        const b = backupFor(c.backups, t?.ms)!;
        const dataDir = e.spec.pitr.dataDir;
        return {
          target: input.target,
          stanza: input.target,
          mode: t ? 'time' : 'latest',
          ...(t ? { targetTime: t.pg } : {}),
          window,
          backup: b.label,
          dataDir,
          steps: [
            'stop writers (hooks.stopWriters)',
            'pgbackrest verify (the repository, before anything is stopped on the server)',
            `stop the server (${e.spec.pitr.stopServer?.length ? 'pitr.stopServer hooks' : `pg_ctl -D ${dataDir} stop -m fast`})`,
            `pgbackrest restore --delta ${t ? `--type=time --target="${t.pg}" --target-action=promote` : '--type=default'} from backup ${b.label} into ${dataDir}`,
            `start the server (${e.spec.pitr.startServer?.length ? 'pitr.startServer hooks' : 'pg_ctl start'}) and wait until recovery ends and it takes writes`,
            'post-restore hooks, start writers (on every path), checks',
          ],
        };
      });
    },

    /** Stops or starts the server around a restore. Idempotent. */
    async pitrServer(input: { target: string; phase: 'stopServer' | 'startServer'; workflowId: string }): Promise<{ ran: string[] }> {
      const e = engine(input.target);
      return inActivity(store(input.target), async (ctx) => ({
        ran: await e.server(ctx, input.phase, { LIFEBOAT_TARGET: input.target, LIFEBOAT_PHASE: input.phase, LIFEBOAT_WORKFLOW_ID: input.workflowId, LIFEBOAT_DATA_DIR: e.spec.pitr.dataDir }),
      }));
    },

    /** pgbackrest restore --delta into the data directory; a retry resumes. The server must be stopped. */
    async pitrRestore(input: { target: string; targetTime?: string }): Promise<{ seconds: number }> {
      const e = engine(input.target);
      return inActivity(store(input.target), async (ctx) => {
        const started = performance.now();
        await e.restoreInPlace(ctx, input.targetTime);
        return { seconds: Math.round((performance.now() - started) / 10) / 100 };
      });
    },

    async pitrWaitWritable(input: { target: string; timeoutSeconds: number }): Promise<{ lastReplayed: string | null }> {
      const e = engine(input.target);
      return inActivity(store(input.target), async (ctx) => ({ lastReplayed: await e.waitWritable(ctx, input.timeoutSeconds) }));
    },

    /** Seeds one batch of the drill's markers and returns the server's clock after they committed. Idempotent per nonce. */
    async pitrSeedBatch(input: { target: string; nonce: string }): Promise<{ database: string; count: number; committedBefore: string }> {
      const s = store(input.target);
      const e = engine(input.target);
      return inActivity(s, async (ctx) => {
        const count = MARKERS_PER_KIND.postgres!;
        await s.seedMarkers(ctx, s.drillName(), count, input.nonce);
        return { database: s.drillName(), count, committedBefore: await serverNow(e.conn, e.spec.pg.maintenanceDatabase) };
      });
    },

    /** Closes the WAL segment and waits until it is archived. */
    async pitrSwitchWal(input: { target: string }): Promise<{ wal: string; archivedAt: string }> {
      const e = engine(input.target);
      return inActivity(store(input.target), (ctx) => switchAndWaitArchived(ctx, e.conn, e.spec.pg.maintenanceDatabase, e.spec.pitr.archiveWaitSeconds));
    },

    /** The drill's restore into a scratch copy and the markers it holds; the copy is removed on every path. */
    async pitrDrillRestore(input: { target: string; token: string; targetTime: string; before: string; after: string }): Promise<{
      seconds: number;
      lastReplayed: string | null;
      before: MarkerResult;
      after: MarkerResult;
    }> {
      const e = engine(input.target);
      const s = store(input.target);
      return inActivity(s, async (ctx) => {
        const r = await drillRestore(ctx, e, input.token, input.targetTime, async (port) => {
          const copy = storeAt(config, input.target, port);
          const out: Record<string, number[]> = {};
          for (const n of [input.before, input.after]) out[n] = (await copy.countMarkers(ctx, copy.drillName(), n)).found;
          return out;
        });
        const count = MARKERS_PER_KIND.postgres!;
        return { seconds: r.seconds, lastReplayed: r.lastReplayed, before: checkMarkers(count, r.found[input.before] ?? []), after: checkMarkers(count, r.found[input.after] ?? []) };
      });
    },

    /** Removes a drill's scratch copy (a stopped server, files) if anything of it is left. Idempotent. */
    async pitrScratchCleanup(input: { target: string; token: string }): Promise<{ stopped: number }> {
      const e = engine(input.target);
      return inActivity(store(input.target), (ctx) => removeScratch(e, scratchOf(e, input.token), ctx.signal));
    },
  };
}

export type PitrActivities = ReturnType<typeof createPitrActivities>;
