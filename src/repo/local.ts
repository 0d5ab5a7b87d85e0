import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../errors';
import { HashTap } from './hash-tap';
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
