import { ApplicationFailure, CancellationScope, CancelledFailure, isCancellation } from '@temporalio/workflow';

/**
 * Runs the targets' `tasks` side by side and settles only once every one
 * has; then fails with the first failure, if any. One target's failure does
 * not stop the others: another target's restore is finished rather than left
 * half done, and another target's backup still counts (its manifest is
 * written). With Promise.all a run would go on at the first failure (start
 * writers again, release its locks, end) while another target's dump or
 * restore still ran. Cancelling the run still reaches every one of them.
 */
export async function together<T>(tasks: Array<() => Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(tasks.map((task) => task()));
  const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
  // A failure of its own before a cancellation: that is what the run reports.
  if (failures.length) throw failures.find((e) => !isCancellation(e)) ?? failures[0];
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/**
 * Whether the run ended because it was cancelled. Also true when a cancelled
 * activity could not confirm (its worker had died) and ended by its heartbeat
 * timeout instead: the run was still cancelled, not failed. A failure raised
 * on purpose (an ApplicationFailure anywhere in the chain: writers that did
 * not start again, also from a child run) stays a failure.
 */
export function cancelledRun(err: unknown): boolean {
  return isCancellation(err) || (CancellationScope.current().consideredCancelled && !ownFailure(err));
}

/** Whether an ApplicationFailure is anywhere in the chain: a failure someone raised on purpose (an activity's, a child run's), not a timeout. */
function ownFailure(err: unknown): boolean {
  for (let e = err as { cause?: unknown } | undefined; e; e = e.cause as typeof e) if (e instanceof ApplicationFailure) return true;
  return false;
}

/**
 * The error a cancelled run ends with: a cancellation, so the run shows as
 * cancelled, whatever stopped the cancelled step. (Temporal keeps no message
 * for a cancelled run; the history shows what ended the step.)
 */
export function asCancellation(err: unknown): unknown {
  return isCancellation(err) ? err : new CancelledFailure('cancelled; the cancelled step could not confirm it stopped');
}
