import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../errors';

export interface ToolRun {
  /** The tool's name for messages, e.g. `pg_dump`. */
  tool: string;
  path: string;
  args: string[];
  /** Extra environment for the child (never a secret: pass a file path instead). */
  env?: Record<string, string>;
  signal: AbortSignal;
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

function start(run: ToolRun, stdin: 'pipe' | 'ignore'): ChildProcessByStdio<Writable | null, Readable, Readable> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...run.env };
  // A password in the environment of a child is readable by other users via /proc on some systems.
  delete env.PGPASSWORD;
  const child = spawn(run.path, run.args, { stdio: [stdin, 'pipe', 'pipe'], env, signal: run.signal, killSignal: 'SIGTERM' });
  return child as ChildProcessByStdio<Writable | null, Readable, Readable>;
}

function exitError(run: ToolRun, code: number | null, sig: NodeJS.Signals | null, stderr: string): LifeboatError {
  if (run.signal.aborted) return new LifeboatError('Cancelled', `${run.tool} was cancelled`, false);
  const how = code !== null ? `exited with code ${code}` : `was killed by ${sig}`;
  return new LifeboatError('ToolFailed', `${run.tool} ${how}${stderr ? `: ${stderr}` : ''}`, false);
}

function spawnError(run: ToolRun, err: NodeJS.ErrnoException): LifeboatError {
  if (err.code === 'ENOENT') {
    return new LifeboatError('ToolMissing', `${run.tool} was not found at ${run.path}; install it (Debian: postgresql-client) or set the target's binDir`, true);
  }
  return new LifeboatError('ToolFailed', `${run.tool} could not start: ${err.message}`, false);
}

/**
 * Runs a tool and returns its stdout as a stream that ends only if the tool
 * exits 0; otherwise the stream fails with the tool's stderr. So a consumer
 * that completes an upload on a clean end never stores a truncated dump.
 */
export function toolOutput(run: ToolRun): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const child = start(run, 'ignore');
  const stderr = stderrTail(child);
  child.stdout.pipe(out, { end: false });
  child.on('error', (err: NodeJS.ErrnoException) => out.destroy(spawnError(run, err)));
  child.on('close', (code, sig) => {
    if (code === 0) out.end();
    else out.destroy(exitError(run, code, sig, stderr()));
  });
  // If the consumer gives up, stop the tool too.
  out.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  return out;
}

/** Runs a tool with `input` on its stdin; resolves when it exits 0. */
export async function toolInput(run: ToolRun, input: Readable): Promise<void> {
  await toolFilter(run, input, false);
}

/** Runs a tool with `input` on its stdin and returns its stdout (when `keep`) once it exits 0. */
export async function toolFilter(run: ToolRun, input: Readable, keep = true): Promise<string> {
  const child = start(run, 'pipe');
  const stderr = stderrTail(child);
  const out: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => {
    if (keep) out.push(c);
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => reject(spawnError(run, err)));
    child.on('close', (code, sig) => (code === 0 ? resolve() : reject(exitError(run, code, sig, stderr()))));
  });
  const fed = pipeline(input, child.stdin!).catch((err: NodeJS.ErrnoException) => {
    // The tool closing its stdin early (EPIPE) is reported by its exit status instead.
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') {
      child.kill('SIGTERM');
      throw err;
    }
  });
  const [feedResult, exitResult] = await Promise.allSettled([fed, exited]);
  // The input's own failure (e.g. a checksum mismatch) explains more than the tool's exit.
  if (feedResult.status === 'rejected') throw feedResult.reason;
  if (exitResult.status === 'rejected') throw exitResult.reason;
  return Buffer.concat(out).toString('utf8');
}

/** Runs a tool to completion and returns its stdout as text. */
export async function toolText(run: ToolRun): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of toolOutput(run)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
