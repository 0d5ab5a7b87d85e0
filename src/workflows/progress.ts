import { ApplicationFailure, defineQuery, defineSignal, setCurrentDetails, setHandler } from '@temporalio/workflow';
import { formatBytes } from '../domain/format';
import type { ActivityProgress, ProgressState } from '../domain/plan';
import { LifeboatError } from '../errors';

/** Every lifeboat workflow answers `progress`: the CLI and the Web UI read it. */
export const progressQuery = defineQuery<ProgressState>('progress');

/**
 * Sent by a running activity every few seconds (src/activities/context.ts):
 * the bytes of the item it streams. So `progress`, the CLI's bar and the Web
 * UI's current details move while a long item streams, not only between items.
 */
export const activityProgressSignal = defineSignal<[ActivityProgress]>('activityProgress');

export interface Tracker {
  set(stage: string, detail?: string): void;
  /** An item of `bytes` is done: counted, and its live bytes forgotten. */
  add(bytes: number, key?: string): void;
  /** A new total for what follows (the done bytes start again from 0). */
  total(bytes: number): void;
  /** More bytes expected (targets backed up in parallel each add theirs); the done bytes are kept. */
  expect(bytes: number): void;
}

/**
 * The run's progress: stage, detail, bytes done and in all, rate and ETA.
 * Shown by the `progress` query and, as text, in the Web UI's "current
 * details" (Temporal's user metadata), including what a waiting restore
 * needs from a person.
 */
export function trackProgress(stage: string): Tracker {
  const state: ProgressState = { stage, startedAt: new Date().toISOString() };
  let completed = 0;
  const live = new Map<string, number>();
  const samples: Array<{ at: number; done: number }> = [];

  const refresh = () => {
    const done = completed + [...live.values()].reduce((s, b) => s + b, 0);
    if (state.bytesTotal !== undefined || done > 0) state.bytesDone = done;
    const now = Date.now();
    if (done > 0) {
      samples.push({ at: now, done });
      while (samples.length > 2 && now - samples[0]!.at > 30_000) samples.shift();
      const a = samples[0]!;
      const rate = now - a.at >= 2000 ? ((done - a.done) * 1000) / (now - a.at) : undefined;
      state.bytesPerSecond = rate !== undefined ? Math.round(rate) : undefined;
      state.etaSeconds = rate && rate > 0 && state.bytesTotal ? Math.max(0, Math.ceil((state.bytesTotal - done) / rate)) : undefined;
    }
    const bytes = state.bytesDone !== undefined ? `${formatBytes(state.bytesDone)}${state.bytesTotal ? ` of ${formatBytes(state.bytesTotal)} (${Math.min(100, Math.floor((100 * state.bytesDone) / state.bytesTotal))}%)` : ''}` : '';
    const rate = state.bytesPerSecond ? `${formatBytes(state.bytesPerSecond)}/s` : '';
    const eta = state.etaSeconds !== undefined ? `ETA ${state.etaSeconds}s` : '';
    const lines = [`**${state.stage}**${state.detail ? `: ${state.detail}` : ''}`, [bytes, rate, eta].filter(Boolean).join(' · ')].filter(Boolean);
    setCurrentDetails(lines.join('\n\n'));
  };

  setHandler(progressQuery, () => state);
  setHandler(activityProgressSignal, (p) => {
    if (p.bytes === undefined) return;
    live.set(p.key, p.bytes);
    refresh();
  });
  refresh();
  return {
    set(s, detail) {
      state.stage = s;
      state.detail = detail;
      if (s === 'done') {
        // Finished: what was done stays, a rate and an ETA would be stale.
        state.bytesPerSecond = undefined;
        state.etaSeconds = undefined;
        samples.length = 0;
      }
      refresh();
    },
    add(bytes, key) {
      completed += bytes;
      if (key) live.delete(key);
      else live.clear();
      refresh();
    },
    expect(bytes) {
      if (bytes <= 0) return;
      state.bytesTotal = (state.bytesTotal ?? 0) + bytes;
      refresh();
    },
    total(bytes) {
      state.bytesTotal = bytes;
      completed = 0;
      live.clear();
      samples.length = 0;
      state.bytesDone = 0;
      state.bytesPerSecond = undefined;
      state.etaSeconds = undefined;
      refresh();
    },
  };
}

/**
 * Workflow code must fail with ApplicationFailure: any other error would fail
 * the workflow task and be retried forever instead of failing the run.
 */
export function check<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof LifeboatError) throw ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: true });
    throw err;
  }
}
