import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LifeboatError } from '../../errors';
import { cleanEnv, freePort, processAlive } from '../child';
import type { StoreContext } from '../types';
import type { RedisEndpoint } from './client';
import { waitLoaded } from './file-restore';
import { writeVerifiedRdb } from './rdb-tee';

/**
 * Scratch servers: a restore under another name than the target's own (a
 * scratch drill, `restore --as`) starts a temporary redis-server on the
 * worker host, on loopback and a free port, with a random password in a
 * mode-600 config file and no persistence, loaded from the restored RDB.
 *
 * Each lives in `<scratchDir>/<target>/<name>/` (redis.conf, dump.rdb,
 * state.json, redis.log): that folder *is* the state, so a later activity —
 * or the retry of one whose worker was killed — finds the server by its
 * config file's path in the process table and can stop it. `drop` stops it
 * and deletes the folder.
 */

interface ScratchState {
  pid: number;
  port: number;
  startedAt: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** The environment variable that marks a scratch server's process with its folder. */
const MARK = 'LIFEBOAT_REDIS_SCRATCH';

/**
 * Processes that are the scratch server of `dir`, whoever started them: marked
 * in their environment, or running in that folder, or naming its config file
 * (redis-server rewrites its process title unless told not to, so the
 * command line alone is not enough).
 */
async function processesOf(dir: string): Promise<number[]> {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = await readdir('/proc');
  } catch {
    return out; // no /proc: only the pid in state.json is known
  }
  const conf = join(dir, 'redis.conf');
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const env = await readFile(`/proc/${e}/environ`, 'utf8').catch(() => '');
    const cwd = await readlink(`/proc/${e}/cwd`).catch(() => '');
    const argv = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (env.split('\0').includes(`${MARK}=${dir}`) || cwd === dir || argv.split('\0').includes(conf)) out.push(Number(e));
  }
  return out;
}

export class ScratchServers {
  constructor(
    private readonly root: string,
    private readonly target: string,
    private readonly redisServer: string,
  ) {}

  dirOf(name: string): string {
    if (!NAME.test(name) || name.includes('..')) throw new LifeboatError('InvalidName', `'${name}' is not a valid scratch name`, true);
    return join(this.root, this.target, name);
  }

  /** The root exists, is a folder of this user and nobody else's (it holds passwords and data). */
  private async privateRoot(): Promise<void> {
    await mkdir(join(this.root, this.target), { recursive: true, mode: 0o700 });
    for (const d of [this.root, join(this.root, this.target)]) {
      const st = await lstat(d);
      const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
      if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
        throw new LifeboatError('ConfigError', `scratch folder ${d} must be a folder owned by this user with mode 700 (it is ${st.isDirectory() ? `mode ${(st.mode & 0o777).toString(8)}, owner ${st.uid}` : 'not a folder'}); fix it or set targets.${this.target}.scratchDir`, true);
      }
    }
  }

  async exists(name: string): Promise<boolean> {
    return existsSync(this.dirOf(name));
  }

  /** How to reach the scratch server `name`; undefined when there is none. */
  async endpoint(name: string): Promise<RedisEndpoint | undefined> {
    const dir = this.dirOf(name);
    const state = await readFile(join(dir, 'state.json'), 'utf8').then((t) => JSON.parse(t) as ScratchState).catch(() => undefined);
    const conf = await readFile(join(dir, 'redis.conf'), 'utf8').catch(() => undefined);
    const password = conf && /^requirepass (\S+)$/m.exec(conf)?.[1];
    if (!state || !password) return undefined;
    return { host: '127.0.0.1', port: state.port, password, where: `scratch redis ${name} on 127.0.0.1:${state.port} (target ${this.target})`, passwordField: `${dir}/redis.conf` };
  }

  /** Stops the scratch server `name` (if one runs) and deletes its folder. Idempotent. */
  async drop(name: string): Promise<void> {
    const dir = this.dirOf(name);
    if (!existsSync(dir)) return;
    const state = await readFile(join(dir, 'state.json'), 'utf8').then((t) => JSON.parse(t) as ScratchState).catch(() => undefined);
    const pids = new Set(await processesOf(dir));
    if (state && processAlive(state.pid) && (pids.has(state.pid) || !existsSync('/proc'))) pids.add(state.pid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
    }
    for (let i = 0; i < 100 && [...pids].some(processAlive); i++) await sleep(100);
    for (const pid of pids) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && [...pids].some(processAlive); i++) await sleep(100);
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * At worker start: scratch folders without a running server — what a
   * restore left when its worker died before the server started (the RDB in
   * them is plaintext). A running scratch server is a drill's copy awaiting
   * its count, or one kept on purpose (restore --as): left alone.
   */
  async sweep(): Promise<string[]> {
    const removed: string[] = [];
    const base = join(this.root, this.target);
    for (const name of await readdir(base).catch(() => [] as string[])) {
      const dir = join(base, name);
      if (!NAME.test(name) || (await processesOf(dir)).length > 0) continue;
      await rm(dir, { recursive: true, force: true });
      removed.push(`removed the scratch folder ${dir} of a restore whose worker died`);
    }
    return removed;
  }

  /** Drops `name`, then starts a fresh scratch server loaded from the RDB in `source`. */
  async restore(ctx: StoreContext, name: string, source: Readable): Promise<RedisEndpoint> {
    await this.drop(name);
    await this.privateRoot();
    const dir = this.dirOf(name);
    await mkdir(dir, { mode: 0o700 });
    ctx.progress({ stage: 'restore', item: `scratch ${name}` });
    const summary = await writeVerifiedRdb(source, join(dir, 'dump.rdb'), ctx.signal).catch(async (err: unknown) => {
      await this.drop(name);
      throw err;
    });
    const databases = Math.max(16, ...[...summary.dbs.keys()].map((d) => d + 1));
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.start(ctx, name, dir, databases);
      } catch (err) {
        // Another process may take the free port between the look and the bind.
        if (attempt >= 3 || !/Address already in use/.test((err as Error).message)) {
          await this.drop(name);
          throw err;
        }
      }
    }
  }

  private async start(ctx: StoreContext, name: string, dir: string, databases: number): Promise<RedisEndpoint> {
    const port = await freePort();
    const password = randomBytes(24).toString('hex');
    const conf = join(dir, 'redis.conf');
    const log = join(dir, 'redis.log');
    await rm(log, { force: true });
    // Redis reads double-quoted values with backslash escapes: a folder with spaces stays one value.
    const q = (v: string) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    const text = [
      '# lifeboat scratch server: loopback only, no persistence, dropped by the drill',
      'bind 127.0.0.1',
      `port ${port}`,
      'protected-mode yes',
      'daemonize no',
      `dir ${q(dir)}`,
      'dbfilename dump.rdb',
      'appendonly no',
      'save ""',
      // Keeps the config file's path in the process's command line, where `drop` (and ps) can see it.
      'set-proc-title no',
      `databases ${databases}`,
      `logfile ${q(log)}`,
      `requirepass ${password}`,
      '',
    ].join('\n');
    await writeFile(conf, text, { mode: 0o600 });
    const out = openSync(log, 'a', 0o600);
    let child;
    try {
      // Its own process group, detached: it outlives this activity (the drill counts markers and drops it later).
      child = spawn(this.redisServer, [conf], { detached: true, stdio: ['ignore', out, out], env: cleanEnv({ [MARK]: dir }) });
    } finally {
      closeSync(out);
    }
    const spawned = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new LifeboatError('ToolMissing', `${this.redisServer} was not found; install it (Debian: redis-server) or set targets.${this.target}.redisServer`, true) : err),
      );
    });
    child.unref();
    await writeFile(join(dir, 'state.json'), JSON.stringify({ pid: spawned, port, startedAt: new Date().toISOString() } satisfies ScratchState), { mode: 0o600 });
    const ep: RedisEndpoint = { host: '127.0.0.1', port, password, where: `scratch redis ${name} on 127.0.0.1:${port} (target ${this.target})`, passwordField: conf };
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', async () => {
        const tail = (await readFile(log, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join(' | ');
        reject(new LifeboatError('RestoreFailed', `scratch redis-server ${name} exited while loading the RDB: ${tail || 'no log'}`, false));
      }),
    );
    exited.catch(() => undefined);
    await Promise.race([waitLoaded(ep, 600, ctx.signal), exited]);
    child.removeAllListeners('exit');
    return ep;
  }
}
