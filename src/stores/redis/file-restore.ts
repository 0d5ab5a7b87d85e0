import { randomBytes } from 'node:crypto';
import { processAlive } from '../child';
import { existsSync } from 'node:fs';
import { chown, link, mkdir, open, readdir, readFile, rename, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LifeboatError, messageOf } from '../../errors';
import { hookName, runHook } from '../hooks';
import type { StoreContext } from '../types';
import { info, keyspace, withClient, type RedisEndpoint } from './client';
import { writeVerifiedRdb } from './rdb-tee';
import type { FileSettings } from './settings';

/**
 * The `file` restore, for a worker on the Redis host: the RDB is streamed
 * (and checked: parse and CRC-64) into a private temporary file beside the
 * server's own, *then* the server is stopped by the configured hook, the
 * file renamed over `dbfilename` (atomic), and — when the server runs with
 * AOF, whose files it loads instead of the RDB — a fresh multi-part AOF
 * (Redis 7: `appenddirname/`, a manifest naming one base file) is switched in
 * by renaming its manifest. Then the start hook, and a wait until the server
 * has loaded the data (`INFO persistence` loading:0).
 */

const TEMP_PREFIX = '.lifeboat-restore-';

/** Whether the server answers on its port at all (any answer: it is up). */
function answers(ep: RedisEndpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: ep.host, port: ep.port });
    s.setTimeout(3000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the running server says about its files; undefined when it is down or may not run CONFIG. */
async function serverFiles(ep: RedisEndpoint, ctx: StoreContext): Promise<Record<string, string> | undefined> {
  if (!(await answers(ep))) return undefined;
  try {
    return await withClient(ep, 'reading the server\'s file settings (CONFIG GET)', async (c) => {
      const flat = (await c.call('CONFIG', 'GET', '*')) as string[];
      const out: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
      return out;
    });
  } catch (err) {
    if ((err as LifeboatError).type === 'PermissionDenied') {
      ctx.log.warn(`could not compare the file settings with the server's own: ${messageOf(err)}`);
      return undefined;
    }
    throw err;
  }
}

function checkAgainstServer(s: FileSettings, cfg: Record<string, string>, target: string, ep: RedisEndpoint): void {
  const wrong: string[] = [];
  if (cfg.dir !== undefined && cfg.dir !== s.dir) wrong.push(`dir is ${s.dir}, the server's is ${cfg.dir}`);
  if (cfg.dbfilename !== undefined && cfg.dbfilename !== s.dbfilename) wrong.push(`dbfilename is ${s.dbfilename}, the server's is ${cfg.dbfilename}`);
  if (cfg.appenddirname !== undefined && cfg.appenddirname !== s.appenddirname) wrong.push(`appenddirname is ${s.appenddirname}, the server's is ${cfg.appenddirname}`);
  if (cfg.appendfilename !== undefined && cfg.appendfilename !== s.appendfilename) wrong.push(`appendfilename is ${s.appendfilename}, the server's is ${cfg.appendfilename}`);
  if (wrong.length) {
    throw new LifeboatError('ConfigError', `targets.${target}.restore does not describe ${ep.where}: ${wrong.join('; ')}. Fix the settings; nothing was stopped or replaced`, true);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Gives a file the owner of the data folder (when lifeboat runs as root and the server as its own user). */
async function ownLike(path: string, dir: string): Promise<void> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  const st = await stat(dir);
  await chown(path, st.uid, st.gid);
}

/** The files a Redis 7 AOF manifest lists (`file <name> seq <n> type <b|h|i>`), with the highest seq. */
function readManifest(text: string): { files: string[]; seq: number } {
  const files: string[] = [];
  let seq = 0;
  for (const line of text.split('\n')) {
    const m = /^file (\S+) seq (\d+) type [bhi]$/.exec(line.trim());
    if (!m) continue;
    files.push(m[1]!);
    seq = Math.max(seq, Number(m[2]));
  }
  return { files, seq };
}

/**
 * Switches the server's AOF to one base file holding `rdb` (Redis reads an
 * RDB as AOF base): the new base is linked in, a new manifest written beside
 * and renamed over the old one (the atomic step, as Redis itself does it),
 * then the files of the old manifest are removed.
 */
export async function installAof(s: FileSettings, rdb: string): Promise<void> {
  const aofDir = join(s.dir, s.appenddirname);
  await mkdir(aofDir, { recursive: true, mode: 0o750 });
  await ownLike(aofDir, s.dir);
  const manifest = join(aofDir, `${s.appendfilename}.manifest`);
  const old = existsSync(manifest) ? readManifest(await readFile(manifest, 'utf8')) : { files: [], seq: 0 };
  const seq = old.seq + 1;
  const base = `${s.appendfilename}.${seq}.base.rdb`;
  await rm(join(aofDir, base), { force: true });
  try {
    await link(rdb, join(aofDir, base));
  } catch {
    await copyFile(rdb, join(aofDir, base));
    await ownLike(join(aofDir, base), s.dir);
  }
  const tmp = join(aofDir, `temp-lifeboat-${s.appendfilename}.manifest`);
  await writeFile(tmp, `file ${base} seq ${seq} type b\n`, { mode: 0o640 });
  await ownLike(tmp, s.dir);
  const fh = await open(tmp, 'r+');
  await fh.sync();
  await fh.close();
  await rename(tmp, manifest);
  await fsyncDir(aofDir);
  for (const f of old.files) if (f !== base && !f.includes('/')) await rm(join(aofDir, f), { force: true });
}

async function waitDown(ep: RedisEndpoint, seconds: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (await answers(ep)) {
    if (Date.now() > deadline || signal.aborted) {
      throw new LifeboatError('HookFailed', `${ep.where} still answers ${seconds}s after the stop hook; nothing was replaced (a running server would write its own RDB over the restored one on shutdown)`, false);
    }
    await sleep(250);
  }
}

/** Waits until the server answers and has loaded its data; returns its keys per database. */
export async function waitLoaded(ep: RedisEndpoint, seconds: number, signal: AbortSignal): Promise<Map<number, number>> {
  const deadline = Date.now() + seconds * 1000;
  let last = 'no answer yet';
  while (Date.now() < deadline && !signal.aborted) {
    try {
      const loaded = await withClient(ep, 'waiting for the server to load the data', async (c) => {
        const p = await info(c, 'persistence');
        if (p.loading === '0' && p.async_loading !== '1') return keyspace(c);
        last = `loading, ${p.loading_loaded_perc ?? '?'}% done`;
        return undefined;
      });
      if (loaded) return loaded;
    } catch (err) {
      const e = err as LifeboatError;
      if (e.permanent) throw err;
      last = messageOf(err);
    }
    await sleep(500);
  }
  throw new LifeboatError('RestoreFailed', `${ep.where} did not finish loading the restored data within ${seconds}s (last: ${last}); see its log`, false);
}

/** Removes what an interrupted attempt left in the data folder (a retry holds the target, so none is running). */
async function cleanLeftovers(dir: string): Promise<void> {
  for (const f of await readdir(dir)) if (f.startsWith(TEMP_PREFIX)) await rm(join(dir, f), { force: true });
}

/**
 * At worker start: the RDBs (plaintext) that restores left in the data folder
 * when their worker died. Each file is named after the process that writes it;
 * those of live processes are left alone.
 */
export async function sweepTempRdbs(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    const m = /^\.lifeboat-restore-(\d+)-/.exec(f);
    if (!m || processAlive(Number(m[1]))) continue;
    await rm(join(dir, f), { force: true });
    removed.push(`removed ${join(dir, f)}, an RDB a restore was writing when its worker died`);
  }
  return removed;
}

export async function fileRestore(ctx: StoreContext, ep: RedisEndpoint, s: FileSettings, target: string, source: Readable): Promise<{ keys: number }> {
  const hookEnv = (phase: string) => ({ LIFEBOAT_TARGET: target, LIFEBOAT_KIND: 'redis', LIFEBOAT_PHASE: phase });
  let tmp: string | undefined;
  try {
    const st = await stat(s.dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new LifeboatError('ConfigError', `targets.${target}.restore.dir ${s.dir} is not a folder on this worker; a file restore runs on the Redis host (docs/redis.md)`, true);
    const cfg = await serverFiles(ep, ctx);
    if (cfg) checkAgainstServer(s, cfg, target, ep);
    const aof = s.appendonly === 'auto' ? (cfg?.appendonly !== undefined ? cfg.appendonly === 'yes' : existsSync(join(s.dir, s.appenddirname))) : s.appendonly;
    await cleanLeftovers(s.dir);
    tmp = join(s.dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}.rdb`);
    ctx.progress({ stage: 'restore', item: 'write rdb' });
    const summary = await writeVerifiedRdb(source, tmp, ctx.signal);
    await ownLike(tmp, s.dir);
    ctx.progress({ stage: 'stop', item: hookName(s.stop) });
    let failure: unknown;
    try {
      await runHook(s.stop, hookEnv('redis-stop'), ctx.signal);
      await waitDown(ep, s.stop.timeoutSeconds + 30, ctx.signal);
      ctx.progress({ stage: 'restore', item: 'swap files' });
      await rename(tmp, join(s.dir, s.dbfilename));
      tmp = undefined;
      await fsyncDir(s.dir);
      // With AOF on the server loads the AOF, not dump.rdb; an AOF folder left beside an RDB-only server is kept consistent too.
      if (aof || existsSync(join(s.dir, s.appenddirname))) await installAof(s, join(s.dir, s.dbfilename));
    } catch (err) {
      failure = err;
    }
    // Started again whatever happened once the stop hook was run: with the restored data, or with the old one.
    ctx.progress({ stage: 'start', item: hookName(s.start) });
    try {
      await runHook(s.start, hookEnv('redis-start'), new AbortController().signal);
    } catch (err) {
      if (!failure) throw err;
      const f = failure as LifeboatError;
      throw new LifeboatError(f.type ?? 'RestoreFailed', `${messageOf(failure)}; starting the server again failed too: ${messageOf(err)}. Start it by hand`, false);
    }
    if (failure) throw failure;
    ctx.progress({ stage: 'restore', item: 'wait for load' });
    const loaded = await waitLoaded(ep, s.loadTimeoutSeconds, ctx.signal);
    const keys = [...loaded.values()].reduce((a, b) => a + b, 0);
    const inRdb = [...summary.dbs.values()].reduce((a, c) => a + c.keys, 0);
    ctx.log.info('restored RDB loaded', { target, keys, keysInRdb: inRdb, aof });
    return { keys };
  } catch (err) {
    source.destroy();
    throw err;
  } finally {
    if (tmp) await rm(tmp, { force: true });
  }
}
