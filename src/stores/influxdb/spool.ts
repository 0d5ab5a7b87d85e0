import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { LifeboatError } from '../../errors';
import type { Logger } from '../types';

/**
 * Private spool folders for `influxd backup`/`restore`, which only read and
 * write folders. A folder's name says who owns it:
 * `lifeboat-influxdb-<pid>-<start>-<random>` (the worker's pid and the
 * kernel's start time of that process, which a reused pid, e.g. in a
 * recreated container, does not share). Before making its own, every backup
 * and restore removes the folders whose owner is gone (a worker killed
 * mid-backup), so a crashed attempt leaves nothing behind once the next
 * attempt on that host has started; folders of live workers are left alone.
 * A spool folder therefore belongs to one host: never share it between hosts.
 */
export const SPOOL_PREFIX = 'lifeboat-influxdb-';
const NAME = /^lifeboat-influxdb-(\d+)-(\d+)-[0-9a-f]{12}$/;

/** The kernel's start time of a process (clock ticks since boot), which a reused pid does not share; 0 where /proc is not there. */
export function startTime(pid: number | 'self'): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3, starttime field 22.
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return pid === 'self' ? 0 : undefined;
  }
}

/** The folder name of a spool owned by process `pid` started at `start`. */
export function spoolName(pid: number, start: number): string {
  return `${SPOOL_PREFIX}${pid}-${start}-${randomBytes(6).toString('hex')}`;
}

const SELF_START = startTime('self') ?? 0;

function alive(pid: number, start: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (start === 0) return true;
  const now = startTime(pid);
  return now === undefined || now === start;
}

export interface Spool {
  path: string;
  /** Bytes free on the spool's filesystem. */
  free(): Promise<number>;
  /** Removes the folder and everything in it. Never throws. */
  remove(): Promise<void>;
}

/** Removes the spool folders in `dir` whose owning process is gone; returns their names. */
export async function sweepSpools(dir: string, log?: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = NAME.exec(n);
    if (!m || alive(Number(m[1]), Number(m[2]))) continue;
    await rm(join(dir, n), { recursive: true, force: true });
    removed.push(n);
    log?.info('removed the spool folder of a worker that is gone', { path: join(dir, n) });
  }
  return removed;
}

/** A fresh private (mode 700) spool folder in `dir`, after sweeping the dead ones. */
export async function openSpool(dir: string, target: string, log?: Logger): Promise<Spool> {
  await sweepSpools(dir, log);
  const path = join(dir, spoolName(process.pid, SELF_START));
  try {
    await mkdir(path, { mode: 0o700 });
    await chmod(path, 0o700); // whatever the umask
  } catch (err) {
    throw new LifeboatError(
      'SpoolFailed',
      `cannot create a spool folder in ${dir} (${(err as NodeJS.ErrnoException).code ?? err}); create it, fix its permissions or set targets.${target}.spoolDir`,
      true,
    );
  }
  return {
    path,
    free: () => freeBytes(path),
    remove: () => rm(path, { recursive: true, force: true }).catch(() => undefined),
  };
}

export async function freeBytes(path: string): Promise<number> {
  const s = await statfs(path);
  return s.bavail * s.bsize;
}

/** The bytes of the files in a spool folder (one level: portable backups are flat). */
export async function spoolBytes(path: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(path).catch(() => [] as string[])) n += await stat(join(path, f)).then((s) => (s.isFile() ? s.size : 0), () => 0);
  return n;
}

/** The permanent error for a full spool disk: names the folder, what is free and what was needed. */
export function spoolFull(path: string, target: string, free: number, needed?: number): LifeboatError {
  return new LifeboatError(
    'SpoolFull',
    `the spool folder ${path} has ${free} bytes free${needed !== undefined ? `, and about ${needed} bytes are needed` : ' and its disk filled up'}; free space there or set targets.${target}.spoolDir to a folder on a larger disk`,
    true,
  );
}

/** Reads a small file of a spool folder (the manifest). */
export async function readSmall(path: string, cap = 64 * 1024 * 1024): Promise<Buffer> {
  const s = await stat(path);
  if (s.size > cap) throw new LifeboatError('ArtifactUnreadable', `${path} is ${s.size} bytes, larger than any portable manifest`, true);
  return readFile(path);
}
