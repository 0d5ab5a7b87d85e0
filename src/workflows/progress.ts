import { ApplicationFailure, defineQuery, setHandler } from '@temporalio/workflow';
import type { ProgressState } from '../domain/plan';
import { LifeboatError } from '../errors';

/** Every lifeboat workflow answers `progress`: the CLI and the Web UI read it. */
export const progressQuery = defineQuery<ProgressState>('progress');

export interface Tracker {
  set(stage: string, detail?: string): void;
  add(bytes: number): void;
  total(bytes: number): void;
}

export function trackProgress(stage: string): Tracker {
  const state: ProgressState = { stage, startedAt: new Date().toISOString() };
  setHandler(progressQuery, () => state);
  return {
    set(s, detail) {
      state.stage = s;
      state.detail = detail;
    },
    add(bytes) {
      state.bytesDone = (state.bytesDone ?? 0) + bytes;
    },
    total(bytes) {
      state.bytesTotal = bytes;
      state.bytesDone = 0;
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
