import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** A `lifeboat worker` process started from the built CLI (npm run build), as an operator starts one. */
export interface WorkerProcess {
  child: ChildProcess;
  /** stderr as received so far. */
  stderr(): string;
  /** Waits until stderr has a line matching `re` (the process exiting first is an error). */
  waitFor(re: RegExp): Promise<void>;
  /** SIGTERM, then the exit code (or signal name). */
  stop(): Promise<number | string>;
}

export function startWorkerProcess(configFile: string, args: string[]): WorkerProcess {
  const child = spawn(process.execPath, [join(__dirname, '../../bin/lifeboat'), '--config', configFile, ...args, 'worker'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let exited: number | string | undefined;
  const waiters: Array<() => void> = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    wake();
  });
  child.stdout!.resume();
  const done = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = code ?? signal ?? 'unknown';
      wake();
      resolve(exited);
    }),
  );
  return {
    child,
    stderr: () => err,
    async waitFor(re) {
      while (!err.split('\n').some((l) => re.test(l))) {
        if (exited !== undefined) throw new Error(`the worker exited (${exited}) before logging ${re}; its stderr:\n${err}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    async stop() {
      if (exited !== undefined) return exited;
      child.kill('SIGTERM');
      // A worker that ignores SIGTERM is a failure to report, not a test run to hang.
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      return done.finally(() => clearTimeout(timer));
    },
  };
}

/** The value of one Prometheus series in an exposition text; undefined when absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return m[3] === '+Inf' ? Infinity : Number(m[3]);
  }
  return undefined;
}
