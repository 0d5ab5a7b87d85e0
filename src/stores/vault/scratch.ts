import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LifeboatError } from '../../errors';
import type { Logger } from '../types';
import { CONFIG_FILE, stopServer } from './server';

/**
 * The temporary servers of scratch drills, one folder each:
 * `<scratch.dir>/<target>/<name>/` with the server's raft folder, config file,
 * log and `state.json` (written before the server starts, so a worker that
 * dies at any point leaves enough behind for the next one to stop it and
 * delete the folder). The scratch folder must be private to this user: its
 * state files say which processes lifeboat may stop.
 */
export const SCRATCH_PREFIX = 'lifeboat-drill-';

export interface ScratchState {
  target: string;
  name: string;
  createdAt: string;
  /** The worker that started it. */
  startedBy: { host: string; pid: number };
  /** Set once the server answers. */
  address?: string;
  pid?: number;
  configFile?: string;
  /** Set once the snapshot is restored and the server unsealed and active. */
  ready: boolean;
}

/** A folder that lost its server this long ago (or never got one) is left over, not starting. */
const ORPHAN_GRACE_MS = 10 * 60 * 1000;

export class ScratchRegistry {
  constructor(
    private readonly root: string,
    private readonly target: string,
    private readonly log: Logger,
  ) {}

  /** Creates the scratch folder (mode 700) or checks that it is a private folder of this user. */
  async ensureRoot(): Promise<string> {
    // Temporary servers are found again by their command line in /proc: without it one could outlive its drop.
    if (!(await lstat('/proc/self/cmdline').catch(() => undefined))) {
      throw new LifeboatError('ConfigError', `target ${this.target}: scratch restores start temporary servers and find them again through /proc, which this system lacks; run the worker that drills this target on Linux`);
    }
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const st = await lstat(this.root);
    const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
      const why = !st.isDirectory() ? 'is not a folder' : st.uid !== uid ? `belongs to uid ${st.uid}, not to this user (${uid})` : `is open to others (mode ${(st.mode & 0o777).toString(8)})`;
      throw new LifeboatError('ConfigError', `scratch folder ${this.root} of target ${this.target} ${why}; lifeboat keeps its temporary servers there and must own it alone: chmod 700 it, or set targets.${this.target}.scratch.dir`);
    }
    const dir = join(this.root, this.target);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  dirOf(name: string): string {
    return join(this.root, this.target, name);
  }

  async read(name: string): Promise<ScratchState | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dirOf(name), 'state.json'), 'utf8')) as ScratchState;
    } catch {
      return undefined;
    }
  }

  async write(state: ScratchState): Promise<void> {
    const file = join(this.dirOf(state.name), 'state.json');
    await writeFile(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }

  /** A fresh folder for `name`, with its state written before anything starts. */
  async create(name: string): Promise<ScratchState> {
    await this.ensureRoot();
    await mkdir(this.dirOf(name), { mode: 0o700 });
    const state: ScratchState = { target: this.target, name, createdAt: new Date().toISOString(), startedBy: { host: hostname(), pid: process.pid }, ready: false };
    await this.write(state);
    return state;
  }

  /**
   * Stops the server of `name` (only processes whose command line names its
   * config file) and deletes its folder. Idempotent: nothing there is fine.
   */
  async remove(name: string): Promise<boolean> {
    const dir = this.dirOf(name);
    const st = await lstat(dir).catch(() => undefined);
    if (!st) return false;
    if (!st.isDirectory()) throw new LifeboatError('ConfigError', `${dir} is not a folder; lifeboat did not make it and leaves it alone`);
    const stopped = await stopServer(join(dir, CONFIG_FILE));
    await rm(dir, { recursive: true, force: true });
    this.log.info('temporary vault server removed', { target: this.target, name, dir, stopped });
    return true;
  }

  /**
   * Removes the temporary servers of this target that a drill left behind
   * (its worker died and the workflow never dropped them): those older than
   * `maxAgeMs`, and those without a running server that are not just
   * starting. `except` (the one being worked on) is never touched.
   */
  async sweep(maxAgeMs: number, except: string, alive: (configFile: string) => Promise<boolean>): Promise<string[]> {
    const dir = join(this.root, this.target);
    const names = await readdir(dir).catch(() => [] as string[]);
    const removed: string[] = [];
    for (const name of names) {
      if (name === except || !name.startsWith(SCRATCH_PREFIX)) continue;
      const state = await this.read(name);
      const born = state ? Date.parse(state.createdAt) : (await lstat(join(dir, name)).catch(() => undefined))?.mtimeMs;
      const age = born === undefined || Number.isNaN(born) ? Infinity : Date.now() - born;
      const running = await alive(join(dir, name, CONFIG_FILE));
      if (age > maxAgeMs || (!running && age > ORPHAN_GRACE_MS)) {
        this.log.warn('removing a temporary vault server left over by an earlier drill', { target: this.target, name, ageSeconds: Math.round(age / 1000), running });
        await this.remove(name);
        removed.push(name);
      }
    }
    return removed;
  }
}
