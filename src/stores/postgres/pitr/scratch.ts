import { readFileSync } from 'node:fs';
import { chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LifeboatError, messageOf } from '../../../errors';
import { freePort, processAlive } from '../../child';
import type { StoreContext } from '../../types';
import { PgConn } from '../conn';
import type { PitrEngine } from './index';
import { pgbackrest, progressPercent, stopLeftovers } from './run';
import { pgCtl, postmasterPid, waitWritable } from './server';

/** A drill's scratch copy: a data directory, its socket folder and log, named by the drill's token. */
export interface Scratch {
  dataDir: string;
  runDir: string;
  logFile: string;
}

export function scratchOf(engine: PitrEngine, token: string): Scratch {
  if (!/^[a-z0-9]{4,32}$/.test(token)) throw new LifeboatError('InvalidName', `scratch token '${token}' must be 4-32 lowercase letters or digits`);
  const base = join(engine.paths.scratch, `drill-${token}`);
  return { dataDir: base, runDir: `${base}.run`, logFile: `${base}.log` };
}

/**
 * Stops and removes a scratch copy, whatever state a crashed attempt left it
 * in: a pgBackRest restore still writing into it, a temporary server still
 * running on it, files. Touches nothing outside the scratch paths: the
 * processes it stops are those whose argv names the scratch data directory
 * and the postmaster its own pid file names. Idempotent.
 */
export async function removeScratch(engine: PitrEngine, s: Scratch, signal: AbortSignal): Promise<{ stopped: number }> {
  let stopped = await stopLeftovers(`--pg1-path=${s.dataDir}`);
  const pid = postmasterPid(s.dataDir);
  if (pid !== undefined) {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (argv.includes(s.dataDir)) {
      stopped++;
      const { owner } = await engine.runner();
      await pgCtl(engine.spec, owner, s.dataDir, ['stop', '-m', 'immediate', '-w', '-t', '60'], signal).catch(() => process.kill(pid, 'SIGKILL'));
      const deadline = Date.now() + 30_000;
      while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
  await rm(s.dataDir, { recursive: true, force: true });
  await rm(s.runDir, { recursive: true, force: true });
  await rm(s.logFile, { force: true });
  return { stopped };
}

export interface ScratchRestore {
  seconds: number;
  lastReplayed: string | null;
  /** Marker sequence numbers found per nonce in the scratch copy. */
  found: Record<string, number[]>;
}

/**
 * The PITR drill's restore: pgBackRest restores into a scratch data directory
 * on this host (`--type=time --archive-mode=off`: the copy never archives
 * into the real repository), a temporary postmaster starts on a free loopback
 * port with its own socket folder, recovery runs to `targetTime` and promotes,
 * and the markers of each nonce are read back. The scratch copy is stopped and
 * removed on every path; a retry first removes what a dead attempt left.
 */
export async function drillRestore(
  ctx: StoreContext,
  engine: PitrEngine,
  token: string,
  targetTime: string,
  count: (port: number) => Promise<Record<string, number[]>>,
  recoveryTimeoutSeconds = 3600,
): Promise<ScratchRestore> {
  const s = scratchOf(engine, token);
  const left = await removeScratch(engine, s, ctx.signal);
  if (left.stopped) ctx.log.warn(`removed a scratch copy an earlier attempt left running (${left.stopped} process(es))`, { target: engine.target, scratch: s.dataDir });
  try {
    const r = await engine.runner();
    for (const d of [s.dataDir, s.runDir]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      if (process.getuid?.() === 0) await chown(d, r.owner.uid, r.owner.gid);
    }
    const started = performance.now();
    ctx.progress({ stage: 'restore', item: s.dataDir });
    await pgbackrest(r, ['--log-level-console=detail', `--pg1-path=${s.dataDir}`, '--type=time', `--target=${targetTime}`, '--target-action=promote', '--archive-mode=off', 'restore'], {
      signal: ctx.signal,
      onLine: (text) => {
        const pct = progressPercent(text);
        if (pct !== undefined) ctx.progress({ stage: 'restore', item: s.dataDir, percent: pct });
      },
    });
    const port = await freePort();
    // Command-line settings win over the restored postgresql.conf and auto.conf: own port, own
    // socket folder, loopback only, and never archive_command (the copy must not push WAL).
    const opts = [`-c port=${port}`, "-c listen_addresses='127.0.0.1'", `-c unix_socket_directories='${s.runDir}'`, '-c archive_mode=off', "-c archive_command=''", '-c logging_collector=off'];
    if (/[^A-Za-z0-9_./-]/.test(s.runDir)) throw new LifeboatError('ConfigError', `scratch folder ${s.runDir} must consist of letters, digits, '.', '_', '-' and '/' (it is passed to the server's command line)`);
    ctx.progress({ stage: 'start scratch server', item: `127.0.0.1:${port}` });
    await pgCtl(engine.spec, r.owner, s.dataDir, ['-l', s.logFile, '-o', opts.join(' '), 'start', '-W'], ctx.signal);
    const conn = new PgConn(engine.target, { ...engine.spec.pg, host: '127.0.0.1', port });
    const failed = () => {
      let log = '';
      try {
        log = readFileSync(s.logFile, 'utf8');
      } catch {
        return undefined;
      }
      if (/recovery ended before configured recovery target was reached|FATAL: .*(could not|invalid|requested timeline)/.test(log)) {
        return `the scratch copy of target ${engine.target} did not recover to ${targetTime}: ${log.split('\n').filter((l) => /FATAL|ERROR/.test(l)).slice(-3).join(' | ')}`;
      }
      if (postmasterPid(s.dataDir) === undefined && /database system is shut down|terminated/.test(log)) return `the scratch server of target ${engine.target} stopped: ${log.trim().split('\n').slice(-3).join(' | ')}`;
      return undefined;
    };
    const lastReplayed = await waitWritable(ctx, conn, engine.spec.pg.maintenanceDatabase, recoveryTimeoutSeconds, failed);
    const seconds = Math.round((performance.now() - started) / 10) / 100;
    ctx.progress({ stage: 'count markers', item: s.dataDir });
    return { seconds, lastReplayed, found: await count(port) };
  } finally {
    await removeScratch(engine, s, new AbortController().signal).catch((err: unknown) => ctx.log.warn(`could not remove the scratch copy ${s.dataDir}: ${messageOf(err)}`, { target: engine.target }));
  }
}
