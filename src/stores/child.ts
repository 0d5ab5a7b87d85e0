import { addAbortListener } from 'node:events';
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../errors';
import { takeToolRoute } from '../repo/unzstd';

export interface ToolRun {
  /** The tool's name for messages, e.g. `pg_dump`. */
  tool: string;
  path: string;
  args: string[];
  /** The child's whole environment beside the basics (cleanEnv): never a secret, pass a file path instead. */
  env?: Record<string, string>;
  signal: AbortSignal;
  /** What to install when the tool is missing, for the message (e.g. 'Debian: postgresql-client'). */
  install?: string;
}

/** What a child may inherit from the worker: the basics a program needs to run, nothing else (no secrets). */
const INHERITED = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR'];

/** A clean environment for a child process: the basics (PATH, HOME, locale, TZ) plus `extra`. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && (INHERITED.includes(k) || k.startsWith('LC_'))) env[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** Whether a process of this host still runs (a zombie, exited but not reaped, does not). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc (not Linux): signal 0 is all there is
  }
}

/** A free TCP port on loopback, for a temporary server this host starts. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** How long a tool may take to exit after SIGTERM before it is killed. */
const KILL_GRACE_MS = 5_000;

/**
 * Stops a child started with `detached: true` and everything it started (its
 * process group): SIGTERM, then SIGKILL after `graceMs` if it is still there.
 */
export function killTree(child: ChildProcess, graceMs = KILL_GRACE_MS): void {
  const signal = (sig: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      child.kill(sig);
    }
  };
  signal('SIGTERM');
  setTimeout(() => signal('SIGKILL'), graceMs).unref();
}

/** Keeps the last few KiB of a tool's stderr for the error message. */
function stderrTail(child: { stderr: Readable }): () => string {
  let tail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    tail = (tail + s).slice(-4000);
  });
  return () => tail.trim();
}

interface Started {
  child: ChildProcessByStdio<Writable | null, Readable, Readable>;
  /** Settles when the process has exited (never rejects): its code and signal. */
  exited: Promise<{ code: number | null; sig: NodeJS.Signals | null }>;
  /** Stops the process (and its group); `exited` tells when it is gone. */
  stop(): void;
}

function start(run: ToolRun, stdin: 'pipe' | 'ignore'): Started {
  // Own process group, so stopping the tool also stops whatever it started.
  const child = spawn(run.path, run.args, { stdio: [stdin, 'pipe', 'pipe'], env: cleanEnv(run.env), detached: true }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, sig) => resolve({ code, sig }));
    child.on('error', () => resolve({ code: null, sig: null }));
  });
  const stop = () => killTree(child);
  // Also when the signal was aborted already (a plain 'abort' listener would never fire then).
  const listening = addAbortListener(run.signal, stop);
  void exited.then(() => listening[Symbol.dispose]());
  return { child, exited, stop };
}

function exitError(run: ToolRun, code: number | null, sig: NodeJS.Signals | null, stderr: string): LifeboatError {
  if (run.signal.aborted) return new LifeboatError('Cancelled', `${run.tool} was cancelled`, false);
  const how = code !== null ? `exited with code ${code}` : `was killed by ${sig}`;
  return new LifeboatError('ToolFailed', `${run.tool} ${how}${stderr ? `: ${stderr}` : ''}`, false);
}

function spawnError(run: ToolRun, err: NodeJS.ErrnoException): LifeboatError {
  if (err.code === 'ENOENT') {
    return new LifeboatError('ToolMissing', `${run.tool} was not found at ${run.path}; install it${run.install ? ` (${run.install})` : ''}`, true);
  }
  return new LifeboatError('ToolFailed', `${run.tool} could not start: ${err.message}`, false);
}

/**
 * Runs a tool and hands `fn` its stdout as a stream that ends only if the
 * tool exits 0; otherwise the stream fails with the tool's stderr, so a
 * consumer that completes an upload on a clean end never stores a truncated
 * dump. Whatever `fn` does, this returns only once the tool has exited: a
 * failed or cancelled attempt leaves no tool running (and holding a database
 * session) behind when the next one starts.
 */
export async function withToolOutput<T>(run: ToolRun, fn: (stdout: Readable) => Promise<T>): Promise<T> {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const { child, exited, stop } = start(run, 'ignore');
  const stderr = stderrTail(child);
  child.stdout.pipe(out, { end: false });
  child.on('error', (err: NodeJS.ErrnoException) => out.destroy(spawnError(run, err)));
  void exited.then(({ code, sig }) => {
    if (code === 0) out.end();
    else if (!out.destroyed) out.destroy(exitError(run, code, sig, stderr()));
  });
  // If the consumer gives up, stop the tool too.
  out.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) stop();
  });
  try {
    return await fn(out);
  } catch (err) {
    out.destroy();
    stop();
    throw err;
  } finally {
    await exited;
  }
}

/** Runs a tool with `input` on its stdin; resolves when it exits 0. */
export async function toolInput(run: ToolRun, input: Readable): Promise<void> {
  await toolFilter(run, input, false);
}

/**
 * Runs a tool with `input` on its stdin and returns its stdout (when `keep`)
 * once it exits 0. Returns or fails only after the tool has exited.
 */
export async function toolFilter(run: ToolRun, input: Readable, keep = true): Promise<string> {
  const { child, exited, stop } = start(run, 'pipe');
  const stderr = stderrTail(child);
  const out: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => {
    if (keep) out.push(c);
  });
  let spawnErr: NodeJS.ErrnoException | undefined;
  child.on('error', (err: NodeJS.ErrnoException) => (spawnErr = err));
  // A compressed artifact can decompress straight into the tool's stdin (src/repo/unzstd.ts).
  const route = takeToolRoute(input);
  const fed = (route ? route(child.stdin!, run.signal) : pipeline(input, child.stdin!)).catch((err: NodeJS.ErrnoException) => {
    // The tool closing its stdin early (EPIPE) is reported by its exit status instead.
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') {
      stop();
      throw err;
    }
  });
  const [feedResult, { code, sig }] = await Promise.all([fed.then(() => undefined, (err: unknown) => ({ err })), exited]);
  // The input's own failure (e.g. a checksum mismatch) explains more than the tool's exit.
  if (feedResult) throw feedResult.err;
  if (spawnErr) throw spawnError(run, spawnErr);
  if (code !== 0) throw exitError(run, code, sig, stderr());
  return Buffer.concat(out).toString('utf8');
}

/** Runs a tool to completion and returns its stdout as text. */
export async function toolText(run: ToolRun): Promise<string> {
  return withToolOutput(run, async (out) => {
    const chunks: Buffer[] = [];
    for await (const c of out) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  });
}
