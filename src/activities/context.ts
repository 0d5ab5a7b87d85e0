import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { LifeboatError, messageOf } from '../errors';
import type { ActivityProgress } from '../domain/plan';
import type { Progress, Store, StoreContext } from '../stores';

/** Heartbeats every 5 s, or three times per heartbeat timeout when that is shorter than 15 s. */
const heartbeatEveryMs = (timeoutMs?: number) => Math.min(5_000, timeoutMs ? timeoutMs / 3 : 5_000);
/**
 * How often a running activity tells its workflow how far it got (a signal:
 * an event in the history). LIFEBOAT_PROGRESS_INTERVAL_MS tunes it (tests make it short).
 */
const reportEveryMs = () => Number(process.env.LIFEBOAT_PROGRESS_INTERVAL_MS ?? 5_000);

/**
 * Runs a store operation inside an activity: gives it a StoreContext whose
 * progress becomes heartbeats (also sent on a timer, so a tool that is silent
 * for a while does not look dead), and turns its failures into
 * ApplicationFailures whose `type` says what happened and whether a retry helps.
 */
export async function inActivity<T>(store: Store | null, fn: (ctx: StoreContext) => Promise<T>, extra: Pick<StoreContext, 'repository'> = {}, progressKey?: string): Promise<T> {
  const actx = Context.current();
  const info = actx.info;
  if (info.attempt > 1) {
    // Every activity is idempotent: a retry after a crash redoes the item from a clean start
    // (a dump is dumped again, a database dropped and restored again); say where the last attempt got to.
    actx.log.warn('retrying after an earlier attempt failed or its worker died', { attempt: info.attempt, lastProgress: info.heartbeatDetails as unknown });
  }
  let last: Progress = { stage: 'start' };
  let reported = { at: 0, bytes: -1 };
  // With a progress key, the bytes also go to the workflow itself, so its `progress` and the Web UI move during one long item.
  const report = () => {
    const wf = info.workflowExecution;
    if (!wf || !progressKey || last.bytes === undefined || last.bytes === reported.bytes || Date.now() - reported.at < reportEveryMs()) return;
    reported = { at: Date.now(), bytes: last.bytes };
    const p: ActivityProgress = { key: progressKey, stage: last.stage, bytes: last.bytes, ...(last.totalBytes !== undefined ? { totalBytes: last.totalBytes } : {}) };
    actx.client.workflow
      .getHandle(wf.workflowId, wf.runId)
      .signal('activityProgress', p)
      .catch(() => undefined); // progress is best effort: the work never waits for it
  };
  const timer = setInterval(() => {
    actx.heartbeat(last);
    report();
  }, heartbeatEveryMs(info.heartbeatTimeoutMs));
  const ctx: StoreContext = {
    signal: actx.cancellationSignal,
    progress(p) {
      last = p;
      actx.heartbeat(p);
      report();
    },
    log: actx.log,
    ...extra,
  };
  try {
    return await fn(ctx);
  } catch (err) {
    throw toFailure(err, store, actx.cancellationSignal);
  } finally {
    clearInterval(timer);
  }
}

export function toFailure(err: unknown, store: Store | null, signal?: AbortSignal): Error {
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  if (signal?.aborted) return new CancelledFailure(`cancelled: ${messageOf(err)}`);
  const type = err instanceof LifeboatError ? err.type : ((err as { code?: string }).code ?? (err as Error)?.name ?? 'Error');
  const permanent = (err instanceof LifeboatError && err.permanent) || (store ? store.isPermanent(err) : false);
  return ApplicationFailure.create({ message: messageOf(err), type, nonRetryable: permanent });
}
