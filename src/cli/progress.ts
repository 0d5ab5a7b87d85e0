import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Config } from '../config';
import type { ProgressState } from '../domain/plan';
import { missingWorkers } from './client';
import { bytes } from './output';

/** How long a run may wait for a missing worker before the CLI says so (once). */
const NO_WORKER_NOTICE_MS = 30_000;
/** How often the CLI asks a run for its progress while it waits (LIFEBOAT_WATCH_INTERVAL_MS). */
const POLL_EVERY_MS = Number(process.env.LIFEBOAT_WATCH_INTERVAL_MS ?? 1_000);

/** Rate and time left, from the bytes done over the last samples (a sliding window, so a stall shows). */
export class Rate {
  private samples: Array<{ at: number; done: number }> = [];

  constructor(private readonly windowMs = 20_000) {}

  add(at: number, done: number): void {
    if (this.samples.length && done < this.samples[this.samples.length - 1]!.done) this.samples = []; // a new item or stage
    this.samples.push({ at, done });
    while (this.samples.length > 2 && at - this.samples[0]!.at > this.windowMs) this.samples.shift();
  }

  /** Bytes per second, once two samples are apart in time. */
  bytesPerSecond(): number | undefined {
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    if (!a || !b || b.at - a.at < 1000) return undefined;
    return ((b.done - a.done) * 1000) / (b.at - a.at);
  }

  etaSeconds(total: number | undefined): number | undefined {
    const rate = this.bytesPerSecond();
    const done = this.samples[this.samples.length - 1]?.done;
    if (!total || rate === undefined || rate <= 0 || done === undefined) return undefined;
    return Math.max(0, Math.ceil((total - done) / rate));
  }
}

export function formatEta(s: number): string {
  if (s < 90) return `${s}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Follows a run's `progress` query while the CLI waits: a live line on a
 * terminal, JSON lines with --json (on stderr, so stdout stays one document:
 * stage, bytes, total, rate, ETA), and one line per stage otherwise. The
 * returned function stops it and resolves once no query is in flight, so the
 * connection can be closed safely.
 */
export function followProgress(handle: WorkflowHandle, json: boolean, opts: { client: Client; config: Config; targets: string[]; noWorkerCheck: boolean }): () => Promise<void> {
  const tty = process.stderr.isTTY === true && !json;
  const rate = new Rate();
  let last = '';
  let stopped = false;
  const startedAt = Date.now();
  let noticed = false;

  const render = (p: ProgressState): void => {
    const now = Date.now();
    if (p.bytesDone !== undefined) rate.add(now, p.bytesDone);
    const bps = rate.bytesPerSecond();
    const eta = rate.etaSeconds(p.bytesTotal);
    if (json) {
      const line = JSON.stringify({ progress: { ...p, ...(bps !== undefined ? { bytesPerSecond: Math.round(bps) } : {}), ...(eta !== undefined ? { etaSeconds: eta } : {}) } });
      if (line !== last) process.stderr.write(`${line}\n`);
      last = line;
      return;
    }
    const parts = [p.stage, p.detail].filter(Boolean);
    if (p.bytesTotal) {
      const done = p.bytesDone ?? 0;
      parts.push(`${bytes(done)} / ${bytes(p.bytesTotal)} (${Math.min(100, Math.floor((100 * done) / p.bytesTotal))}%)`);
    } else if (p.bytesDone) {
      parts.push(bytes(p.bytesDone));
    }
    if (bps !== undefined && bps > 0) parts.push(`${bytes(bps)}/s`);
    if (eta !== undefined) parts.push(`ETA ${formatEta(eta)}`);
    const line = parts.join('  ');
    if (tty) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 100) - 1)}`);
    else if (p.stage !== last) process.stderr.write(`  ${line}\n`);
    last = tty ? line : p.stage;
  };

  /** A run that never started: no worker took its first task. Say so once; it keeps waiting. */
  const checkWorkers = async (started: boolean) => {
    if (noticed || started || opts.noWorkerCheck || Date.now() - startedAt < NO_WORKER_NOTICE_MS) return;
    noticed = true;
    const missing = await missingWorkers(opts.client, opts.config, opts.targets.length ? opts.targets : [...opts.config.targets.keys()]).catch(() => []);
    if (missing.length) process.stderr.write(`${tty ? '\n' : ''}lifeboat: no worker polls task queue ${missing.join(' nor ')}; the run waits until one does (Ctrl-C stops waiting, the run stays queued)\n`);
  };

  const poll = async (): Promise<void> => {
    while (!stopped) {
      let started = false;
      try {
        render(await handle.query<ProgressState>('progress'));
        started = true;
      } catch {
        // not yet started (no worker took it), or already closed: the result will tell
      }
      if (stopped) break;
      await checkWorkers(started);
      await new Promise((r) => setTimeout(r, POLL_EVERY_MS));
    }
  };
  const loop = poll();
  return async () => {
    stopped = true;
    await loop;
    if (tty && last) process.stderr.write('\r\x1b[K');
  };
}
