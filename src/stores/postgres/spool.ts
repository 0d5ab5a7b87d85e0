import { createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../../errors';
import { processAlive } from '../child';
import type { Logger } from '../types';

const ZEROS = Buffer.alloc(1 << 20);

/**
 * Overwrites a file with zeros, flushes it to the device, then unlinks it.
 * On copy-on-write filesystems (btrfs, ZFS, APFS), on SSDs (wear levelling)
 * and with snapshots the old blocks may survive the overwrite: it is a best
 * effort, which is why the spool is opt-in (`jobs`) and lives in `spoolDir`.
 */
export async function shred(path: string): Promise<void> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return; // never created
  }
  const fh = await open(path, 'r+');
  try {
    for (let at = 0; at < size; at += ZEROS.length) await fh.write(ZEROS, 0, Math.min(ZEROS.length, size - at), at);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rm(path, { force: true });
}

const SPOOL_PREFIX = 'lifeboat-spool-';
const OWNER_FILE = 'owner.json';

/** Shreds every file in a spool folder, then removes it. */
async function removeSpool(folder: string): Promise<void> {
  for (const f of await readdir(folder).catch(() => [] as string[])) if (f !== OWNER_FILE) await shred(join(folder, f));
  await rm(folder, { recursive: true, force: true });
}

/**
 * Removes the spools that attempts on this host left when their process died
 * (a worker killed mid-restore): the decrypted dump must not stay on disk.
 * Spools of live processes are left alone. Returns what it removed.
 */
export async function sweepSpools(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(SPOOL_PREFIX)) continue;
    const folder = join(dir, name);
    const owner = await readFile(join(folder, OWNER_FILE), 'utf8').then((t) => JSON.parse(t) as { pid?: number; host?: string }).catch(() => ({}) as { pid?: number; host?: string });
    if (owner.host === hostname() && owner.pid !== undefined && processAlive(owner.pid)) continue;
    if (owner.host !== undefined && owner.host !== hostname()) continue; // another host's (a shared folder): its own worker sweeps it
    await removeSpool(folder);
    removed.push(`removed the spool ${folder} of a restore whose worker died`);
  }
  return removed;
}

/**
 * Writes `source` (plaintext) to a private file (mode 600 in a mode 700
 * folder named after `name` under `dir`), runs `fn` on it, and shreds it
 * afterwards, whatever happens. A retry finds the folder of a crashed attempt
 * by its name and shreds it first; the next worker start sweeps it too.
 * pg_restore --jobs needs a seekable file; nothing else spools.
 */
export async function withSpool<T>(dir: string, name: string, source: Readable, opts: { signal: AbortSignal; log: Logger; onBytes?: (n: number) => void }, fn: (path: string) => Promise<T>): Promise<T> {
  const folder = join(dir, `${SPOOL_PREFIX}${name}`);
  try {
    await removeSpool(folder); // what a crashed attempt of the same restore left
    await mkdir(folder, { mode: 0o700 });
    await writeFile(join(folder, OWNER_FILE), JSON.stringify({ pid: process.pid, host: hostname() }), { mode: 0o600 });
  } catch (err) {
    throw new LifeboatError('SpoolFailed', `cannot create a spool folder in ${dir} for pg_restore --jobs (${(err as NodeJS.ErrnoException).code ?? err}); create it, fix its permissions or set the target's spoolDir`, true);
  }
  const path = join(folder, 'dump');
  try {
    await chmod(folder, 0o700);
    let bytes = 0;
    const count = async function* (src: AsyncIterable<Buffer>) {
      for await (const c of src) {
        opts.onBytes?.((bytes += c.length));
        yield c;
      }
    };
    try {
      await pipeline(source, count, createWriteStream(path, { flags: 'wx', mode: 0o600 }), { signal: opts.signal });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new LifeboatError('SpoolFailed', `spooling '${name}' to ${dir} for pg_restore --jobs ran out of space after ${bytes} bytes; free space there, set the target's spoolDir to a larger private disk, or unset jobs to stream the restore`, true);
      }
      throw err;
    }
    return await fn(path);
  } finally {
    await removeSpool(folder).catch((err: unknown) => opts.log.warn('could not shred the spool', { folder, error: String(err) }));
  }
}
