import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open as openFile, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../errors';
import { HashTap } from './hash-tap';
import { repositoryFull } from './full';
import type { Entry, PutResult, Repository } from './types';

/** A repository in a local folder: for development and tests, not off-box. */
export class LocalRepository implements Repository {
  constructor(private readonly root: string) {}

  private path(key: string): string {
    return join(this.root, key);
  }

  url(key: string): string {
    return `file://${this.path(key)}`;
  }

  async put(key: string, body: Readable, signal?: AbortSignal): Promise<PutResult> {
    const final = this.path(key);
    const partial = `${final}.partial`;
    await mkdir(dirname(final), { recursive: true });
    const tap = new HashTap();
    try {
      await pipeline(body, tap, createWriteStream(partial, { flush: true }), { signal });
      await rename(partial, final);
    } catch (err) {
      await rm(partial, { force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw repositoryFull(this.url(key), tap.bytes, `${code} on ${this.root}`);
      throw err;
    }
    return { bytes: tap.bytes, sha256: tap.digest() };
  }

  async putText(key: string, text: string): Promise<PutResult> {
    return this.put(key, Readable.from([Buffer.from(text)]));
  }

  async get(key: string): Promise<Readable> {
    if (!(await this.exists(key))) throw new LifeboatError('ArtifactNotFound', `${this.url(key)} does not exist`);
    return createReadStream(this.path(key));
  }

  async open(key: string, opts: { signal?: AbortSignal; pin?: string } = {}): Promise<{ body: Readable; pin: string }> {
    let fh;
    try {
      fh = await openFile(this.path(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new LifeboatError('ArtifactNotFound', `${this.url(key)} does not exist`);
      throw err;
    }
    // The open file's identity: a replaced file is another inode, an edited one has another size or time.
    const st = await fh.stat();
    const pin = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    if (opts.pin && opts.pin !== pin) {
      await fh.close();
      throw new LifeboatError('ArtifactChanged', `${this.url(key)} was replaced after it was verified; it was not restored. Someone wrote to the repository during the restore: verify the backup again`);
    }
    return { body: fh.createReadStream({ signal: opts.signal }), pin };
  }

  async getText(key: string): Promise<string> {
    if (!(await this.exists(key))) throw new LifeboatError('ArtifactNotFound', `${this.url(key)} does not exist`);
    return readFile(this.path(key), 'utf8');
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.path(key))).isFile();
    } catch {
      return false;
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      const st = await stat(this.path(key));
      return st.isFile() ? st.size : undefined;
    } catch {
      return undefined;
    }
  }

  async list(dir: string): Promise<Entry[]> {
    try {
      const items = await readdir(this.path(dir), { withFileTypes: true });
      return items
        .filter((d) => !d.name.endsWith('.partial'))
        .map((d) => ({ name: d.name, dir: d.isDirectory() }))
        .sort((a, b) => a.name.localeCompare(b.name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async lockedUntil(): Promise<Date | undefined> {
    return undefined;
  }

  async delete(keys: string[]): Promise<void> {
    for (const k of keys) await rm(this.path(k), { force: true });
  }
}
