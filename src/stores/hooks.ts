import { spawn } from 'node:child_process';
import type { Hook } from '../config/hooks';
import { LifeboatError } from '../errors';

/** Describes a hook for messages (the argv, or method and URL). */
export function hookName(h: Hook): string {
  return 'command' in h ? h.command.join(' ') : `${h.http.method} ${h.http.url}`;
}

function tail(s: string): string {
  const t = s.trim();
  return t.length > 2000 ? `…${t.slice(-2000)}` : t;
}

/** Runs one writer hook; fails with its output in the message. */
export async function runHook(h: Hook, signal: AbortSignal): Promise<string> {
  const timeout = AbortSignal.any([signal, AbortSignal.timeout(h.timeoutSeconds * 1000)]);
  if ('http' in h) {
    let res: Response;
    try {
      res = await fetch(h.http.url, { method: h.http.method, headers: h.http.headers, signal: timeout });
    } catch (err) {
      throw new LifeboatError('HookFailed', `hook ${hookName(h)} failed: ${(err as Error).name === 'TimeoutError' ? `no answer within ${h.timeoutSeconds}s` : (err as Error).message}`, false);
    }
    const body = tail(await res.text().catch(() => ''));
    if (!res.ok) throw new LifeboatError('HookFailed', `hook ${hookName(h)} answered ${res.status}${body ? `: ${body}` : ''}`, false);
    return body;
  }
  const [cmd, ...args] = h.command;
  return new Promise((resolve, reject) => {
    let out = '';
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], signal: timeout });
    child.stdout.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-8000)));
    child.stderr.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-8000)));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.name === 'AbortError') reject(new LifeboatError('HookFailed', `hook ${hookName(h)} did not finish within ${h.timeoutSeconds}s and was stopped${out ? `; its output: ${tail(out)}` : ''}`, false));
      else reject(new LifeboatError('HookFailed', `hook ${hookName(h)} could not start: ${err.message}`, err.code === 'ENOENT'));
    });
    child.on('close', (code) => {
      if (code === 0) resolve(tail(out));
      else if (code !== null) reject(new LifeboatError('HookFailed', `hook ${hookName(h)} exited with code ${code}${out ? `: ${tail(out)}` : ''}`, false));
    });
  });
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
