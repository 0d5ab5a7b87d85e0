import { spawn } from 'node:child_process';
import { resolveSecret } from '../config';
import type { Hook } from '../config/hooks';
import { LifeboatError } from '../errors';
import { cleanEnv, killTree } from './child';

/** Describes a hook for messages (the argv, or method and URL). */
export function hookName(h: Hook): string {
  return 'command' in h ? h.command.join(' ') : `${h.http.method} ${h.http.url}`;
}

function tail(s: string, n = 2000): string {
  const t = s.trim();
  return t.length > n ? `…${t.slice(-n)}` : t;
}

/** How long a hook may take to end after it was told to stop (SIGTERM), before SIGKILL. */
const STOP_GRACE_MS = 5_000;

/**
 * Runs one writer hook with the run's context in its environment (command
 * hooks) or as a JSON body (HTTP hooks). Resolves with the tail of its output;
 * fails naming the exit status or signal and the tail of its output. A command
 * runs in its own process group: on timeout or cancellation the whole group is
 * stopped, so nothing it started outlives it.
 */
export async function runHook(h: Hook, context: Record<string, string>, signal: AbortSignal, onOutput?: (tail: string) => void): Promise<string> {
  if ('http' in h) return runHttpHook(h, context, signal);
  const [cmd, ...args] = h.command;
  const name = hookName(h);
  // A cancel that came first never fires its event again: the hook must not start at all.
  if (signal.aborted) throw new LifeboatError('Cancelled', `hook '${name}' was not started: the run was cancelled`, false);
  return new Promise((resolve, reject) => {
    let out = '';
    let stopping: 'timeout' | 'cancel' | undefined;
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv({ ...h.env, ...context }), cwd: h.cwd, detached: true });
    const collect = (c: Buffer) => {
      out = (out + c.toString()).slice(-8000);
      onOutput?.(tail(out, 500));
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const stop = (why: 'timeout' | 'cancel') => {
      if (stopping || child.exitCode !== null || child.signalCode !== null) return;
      stopping = why;
      killTree(child, STOP_GRACE_MS);
    };
    const timer = setTimeout(() => stop('timeout'), h.timeoutSeconds * 1000);
    const onAbort = () => stop('cancel');
    signal.addEventListener('abort', onAbort, { once: true });
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const output = () => (out.trim() ? `; its last output: ${tail(out)}` : '; it printed nothing');
    child.on('error', (err: NodeJS.ErrnoException) => {
      done();
      reject(new LifeboatError('HookFailed', `hook '${name}' could not start: ${err.code === 'ENOENT' ? `${cmd} was not found (check the path and PATH of the worker)` : err.message}`, err.code === 'ENOENT'));
    });
    child.on('close', (code, sig) => {
      done();
      if (code === 0 && !stopping) return resolve(tail(out));
      if (stopping === 'cancel') return reject(new LifeboatError('Cancelled', `hook '${name}' was stopped: the run was cancelled`, false));
      if (stopping === 'timeout') return reject(new LifeboatError('HookFailed', `hook '${name}' did not finish within its timeout of ${h.timeoutSeconds}s and was stopped${output()}`, false));
      const how = code !== null ? `exited with status ${code}` : `was killed by signal ${sig}`;
      reject(new LifeboatError('HookFailed', `hook '${name}' ${how}${output()}`, false));
    });
  });
}

async function runHttpHook(h: Extract<Hook, { http: unknown }>, context: Record<string, string>, signal: AbortSignal): Promise<string> {
  const name = hookName(h);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  for (const [k, v] of Object.entries(h.http.headers)) headers[k] = typeof v === 'string' ? v : await resolveSecret(v, `hook '${name}' header ${k}`);
  let res: Response;
  try {
    const body = h.http.method === 'GET' || h.http.method === 'HEAD' ? undefined : JSON.stringify(context);
    res = await fetch(h.http.url, { method: h.http.method, headers, body, signal: AbortSignal.any([signal, AbortSignal.timeout(h.timeoutSeconds * 1000)]) });
  } catch (err) {
    if (signal.aborted) throw new LifeboatError('Cancelled', `hook '${name}' was stopped: the run was cancelled`, false);
    const why = (err as Error).name === 'TimeoutError' ? `no answer within its timeout of ${h.timeoutSeconds}s` : ((err as { cause?: Error }).cause?.message ?? (err as Error).message);
    throw new LifeboatError('HookFailed', `hook '${name}' failed: ${why}`, false);
  }
  const text = tail(await res.text().catch(() => ''));
  if (!res.ok) throw new LifeboatError('HookFailed', `hook '${name}' answered HTTP ${res.status}${text ? `: ${text}` : ''}`, false);
  return text;
}

/** Polls a readiness URL until it answers 2xx, for at most `seconds`. */
export async function waitReady(url: string, seconds: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let last = '';
  while (Date.now() < deadline && !signal.aborted) {
    try {
      const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]) });
      if (res.ok) return;
      last = `answered ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new LifeboatError('CheckFailed', `readiness URL ${url} did not answer 2xx within ${seconds}s (last: ${last})`, false);
}
