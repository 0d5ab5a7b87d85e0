import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../../errors';
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

/**
 * Writes `source` (plaintext) to a private file (mode 600 in a fresh mode 700
 * folder under `dir`), runs `fn` on it, and shreds it afterwards, whatever
 * happens. pg_restore --jobs needs a seekable file; nothing else spools.
 */
export async function withSpool<T>(dir: string, name: string, source: Readable, opts: { signal: AbortSignal; log: Logger; onBytes?: (n: number) => void }, fn: (path: string) => Promise<T>): Promise<T> {
  let folder: string;
  try {
    folder = await mkdtemp(join(dir, 'lifeboat-spool-'));
  } catch (err) {
    throw new LifeboatError('SpoolFailed', `cannot create a spool folder in ${dir} for pg_restore --jobs (${(err as NodeJS.ErrnoException).code ?? err}); create it, fix its permissions or set the target's spoolDir`, true);
  }
  const path = join(folder, `${name}.dump`);
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
        throw new LifeboatError('SpoolFailed', `spooling '${name}' to ${dir} for pg_restore --jobs ran out of space after ${bytes} bytes; free space there, set the target's spoolDir to a larger private disk, or unset jobs to stream the restore`, false);
      }
      throw err;
    }
    return await fn(path);
  } finally {
    await shred(path).catch((err: unknown) => opts.log.warn('could not shred the spool file', { path, error: String(err) }));
    await rm(folder, { recursive: true, force: true });
  }
}
