import { getMaxListeners, setMaxListeners } from 'node:events';
import { LifeboatError } from '../../errors';
import type { StoreContext } from '../types';

/**
 * Runs `fn` over `items`, at most `limit` at a time. Fails fast: after the
 * first error nothing new starts; the ones in flight finish; the first error
 * is thrown. Stops the same way when the signal aborts.
 */
export async function forEachLimit<T>(items: readonly T[], limit: number, signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      if (signal.aborted) {
        failure ??= { err: new LifeboatError('Cancelled', 'cancelled', false) };
        return;
      }
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.err;
}

/** Below this, an object is handled in memory and stored with one PUT (a streamed upload costs far more per object). */
export const SMALL = 1024 * 1024;
/** From this size on, an object is "large": only a few are in flight at once, since each buffers upload parts. */
export const LARGE = 8 * 1024 * 1024;
export const LARGE_AT_ONCE = 2;

/** Every S3 call in flight listens to the context's signal: make room, or Node warns of a leak. */
export function roomFor(signal: AbortSignal, listeners: number): void {
  if (getMaxListeners(signal) < listeners) setMaxListeners(listeners, signal);
}

/**
 * Runs `fn` with a child of `parent`. Per-object work listens to the child,
 * which is dropped afterwards: thousands of calls never pile listeners onto
 * the activity's one signal (adding to a long listener list is linear).
 */
export async function scoped<T>(parent: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const child = new AbortController();
  const abort = () => child.abort(parent.reason);
  if (parent.aborted) abort();
  else parent.addEventListener('abort', abort, { once: true });
  try {
    return await fn(child.signal);
  } finally {
    parent.removeEventListener('abort', abort);
  }
}

/** A counting semaphore: large objects take a slot so only a few buffer whole parts at once. */
export class Semaphore {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}

  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const wake = this.waiting.shift();
      if (wake) wake();
      else this.free++;
    }
  }
}

/** Objects and bytes done, reported to the context at most every half second. */
export class Meter {
  objects = 0;
  bytes = 0;
  private last = 0;

  constructor(
    private readonly ctx: StoreContext,
    private stage: string,
    private readonly item: string,
    private totalObjects: number,
    private totalBytes: number,
  ) {}

  /** Starts a new stage with its own totals. */
  reset(stage: string, totalObjects: number, totalBytes: number): void {
    Object.assign(this, { stage, totalObjects, totalBytes, objects: 0, bytes: 0, last: 0 });
    this.report(true);
  }

  add(objects: number, bytes: number): void {
    this.objects += objects;
    this.bytes += bytes;
    this.report(false);
  }

  report(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.last < 500) return;
    this.last = now;
    this.ctx.progress({ stage: this.stage, item: this.item, objects: this.objects, totalObjects: this.totalObjects, bytes: this.bytes, totalBytes: this.totalBytes });
  }
}
