/** Small helpers shared by the benchmark's parts: progress, timing, tools, process memory. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Human progress: always stderr, so `--json` leaves stdout to the one JSON object. */
export function say(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

export const MB = 1e6;
export const MiB = 1024 * 1024;

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Seconds `fn` took, wall clock, with its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t) / 1e9, value };
}

/**
 * Runs a command to completion; fails with the tail of its stderr. `env` adds to
 * the inherited environment (PGPASSFILE goes here: never a password in argv).
 */
export async function run(path: string, args: string[], opts: { env?: Record<string, string>; echo?: boolean } = {}): Promise<string> {
  const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    err = (err + s).slice(-4000);
    if (opts.echo) process.stderr.write(s);
  });
  const [code, sig] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw new Error(`${path} ${args.join(' ')} ${code !== null ? `exited with code ${code}` : `was killed by ${sig}`}: ${err.trim()}`);
  return out;
}

export interface ProcMemory {
  /** Peak resident set size since start (or since the last resetPeak), MB (10^6). */
  hwmMB: number;
  /** Resident set size now, MB. */
  rssMB: number;
}

/** VmHWM and VmRSS of a live process, from /proc/<pid>/status. */
export function procMemory(pid: number): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { hwmMB: round(kB('VmHWM') / MB, 1), rssMB: round(kB('VmRSS') / MB, 1) };
}

/**
 * Resets a process's VmHWM to its current RSS (Linux >= 4.0: writing 5 to
 * clear_refs), so a later reading measures only what happened after. Returns
 * false where the kernel does not allow it.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface WorkerProcess {
  pid: number;
  child: ChildProcess;
  /** Graceful stop (SIGTERM), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts bench/worker-process.js (compiled, next to this file) as a child:
 * a real lifeboat worker on `taskQueue`, reading `configFile`. Its stdout and
 * stderr go to our stderr. Resolves once the worker is built and polling.
 */
export async function startWorkerProcess(configFile: string, taskQueue: string, timeoutMs = 180_000): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [join(__dirname, 'worker-process.js'), '--config', configFile, '--task-queue', taskQueue], {
    stdio: ['ignore', 2, 2, 'ipc'],
    env: { ...process.env, LIFEBOAT_LOG_LEVEL: process.env.LIFEBOAT_LOG_LEVEL ?? 'WARN', AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING: '1' },
  });
  const exited = once(child, 'exit');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the worker process did not become ready within ${timeoutMs / 1000}s`));
    }, timeoutMs);
    child.on('message', (m: { ready?: boolean }) => {
      if (m?.ready) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the worker process exited before it was ready (${code ?? sig})`));
    });
  });
  return {
    pid: child.pid!,
    child,
    async stop(graceMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
