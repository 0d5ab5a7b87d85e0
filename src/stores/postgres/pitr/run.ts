import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { LifeboatError } from '../../../errors';
import { processAlive, withToolOutput, type ToolRun } from '../../child';
import type { PitrPaths } from './conf';

/** How a pgBackRest command runs: as the data directory's owner, with the target's config file. */
export interface PgbackrestRunner {
  target: string;
  paths: PitrPaths;
  owner: { uid: number; gid: number };
}

/**
 * Runs the command as the data directory's owner: directly when the worker
 * already is that user, through `setpriv` when the worker is root (PostgreSQL
 * and pgBackRest refuse to run as root, and archive-push must be able to
 * read what a backup wrote).
 */
export function asOwner(owner: { uid: number; gid: number }, tool: string, path: string, args: string[], what: string): Pick<ToolRun, 'path' | 'args'> {
  const me = process.getuid?.();
  if (me === undefined || me === owner.uid) return { path, args };
  if (me === 0) return { path: 'setpriv', args: [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--clear-groups', '--', path, ...args] };
  throw new LifeboatError('ConfigError', `${tool} must run as the owner (uid ${owner.uid}) of ${what}, but this worker runs as uid ${me}; run the worker as that user, or as root`);
}

/** What pgBackRest prints per file at log level detail: `backup file … (8KB, 45.12%)`. */
const PERCENT = /\((?:[\d.]+\s*[KMGTP]?i?B|\d+B?),\s*([\d.]+)%\)/;

export function progressPercent(lineText: string): number | undefined {
  const m = PERCENT.exec(lineText);
  return m ? Number(m[1]) : undefined;
}

/** pgBackRest's error code from its output: `ERROR: [050]: …`. */
export function errorCode(output: string): number | undefined {
  const m = /ERROR: \[(\d{3})\]/.exec(output);
  return m ? Number(m[1]) : undefined;
}

/** pgBackRest's failure as a LifeboatError whose type says whether a retry helps. */
export function classify(target: string, err: unknown): unknown {
  if (!(err instanceof LifeboatError) || err.type !== 'ToolFailed') return err;
  const code = errorCode(err.message);
  const msg = err.message;
  if (code === 50) return new LifeboatError('PitrLockBusy', `another pgBackRest run holds the lock of stanza '${target}': ${msg}`, false);
  if (code === 31 || code === 32 || code === 37 || /unable to find hostname|certificate verify failed/.test(msg)) {
    return new LifeboatError('ConfigError', `pgBackRest refused the configuration of target ${target}: ${msg}`);
  }
  // [075] for a time target no backup precedes by a whole second: the same again would fail the same way.
  if (code === 75 && /unable to find backup set/.test(msg)) {
    return new LifeboatError('OutsideWindow', `pgBackRest has no backup of target ${target} that ended in a second before the target time: ${msg}`, true);
  }
  if (/password authentication failed|no pg_hba\.conf entry/.test(msg)) return new LifeboatError('AuthFailed', `pgBackRest could not log in to the server of target ${target}: ${msg}`);
  if (/system-id .* do not match|database version .* do not match|stanza .* mismatch/i.test(msg)) {
    return new LifeboatError('ConfigError', `the pgBackRest repository of target ${target} belongs to another cluster: ${msg}`);
  }
  return err;
}

export interface RunOptions {
  signal: AbortSignal;
  /** Each line of pgBackRest's console output (never holds a secret: pgBackRest redacts them, and none is in argv). */
  onLine?: (text: string) => void;
}

/** Runs `pgbackrest --config=… --stanza=<target> <args…>` and returns its console output. */
export async function pgbackrest(r: PgbackrestRunner, args: string[], o: RunOptions): Promise<string> {
  const full = [`--config=${r.paths.config}`, `--stanza=${r.target}`, ...args];
  const run: ToolRun = {
    tool: 'pgbackrest',
    ...asOwner(r.owner, 'pgbackrest', 'pgbackrest', full, `the data directory of target ${r.target}`),
    env: { PGPASSFILE: r.paths.passfile },
    signal: o.signal,
    install: 'Debian: pgbackrest',
  };
  try {
    return await withToolOutput(run, async (out) => {
      let tail = '';
      for await (const text of createInterface({ input: out, crlfDelay: Infinity })) {
        tail = `${tail}${text}\n`.slice(-64_000);
        o.onLine?.(text);
      }
      return tail;
    });
  } catch (err) {
    throw classify(r.target, err);
  }
}

// ---------------------------------------------------------------- leftovers of a dead worker

/** Processes one of whose arguments is exactly `needle`, with their process group. Linux /proc. */
export async function findProcesses(needle: string): Promise<Array<{ pid: number; pgid: number }>> {
  const out = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
      if (!argv.includes(needle)) continue;
      const statText = await readFile(`/proc/${name}/stat`, 'utf8');
      const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(name), pgid: Number(fields[2]) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Stops what an attempt on a dead worker left running (a pgBackRest process
 * group still writing a backup or a scratch restore): SIGTERM to each group,
 * SIGKILL after `graceMs`; resolves once they are gone. Returns how many
 * processes it found.
 */
export async function stopLeftovers(needle: string, graceMs = 10_000): Promise<number> {
  const found = await findProcesses(needle);
  const groups = [...new Set(found.map((p) => p.pgid))].filter((g) => g > 1 && g !== process.pid);
  const signal = (sig: NodeJS.Signals) => {
    for (const g of groups) {
      try {
        process.kill(-g, sig);
      } catch {
        // already gone
      }
    }
    for (const p of found) {
      try {
        process.kill(p.pid, sig);
      } catch {
        // already gone
      }
    }
  };
  if (found.length === 0) return 0;
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (found.some((p) => processAlive(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (found.some((p) => processAlive(p.pid))) {
    signal('SIGKILL');
    while (found.some((p) => processAlive(p.pid))) await new Promise((r) => setTimeout(r, 100));
  }
  return found.length;
}
