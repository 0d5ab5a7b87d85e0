import { ApplicationFailure, CancellationScope, CancelledFailure, isCancellation } from '@temporalio/workflow';

/**
 * Runs `tasks` side by side and settles only once every one has: the first
 * failure cancels the others, and the run gets that failure when they have
 * all stopped. With Promise.all a run would go on (start writers again,
 * release its locks, end) while another target's dump or restore still ran.
 */
export async function together<T>(tasks: Array<() => Promise<T>>): Promise<T[]> {
  const scope = new CancellationScope();
  const settled = await scope.run(() =>
    Promise.allSettled(
      tasks.map(async (task) => {
        try {
          return await task();
        } catch (err) {
          scope.cancel();
          throw err;
        }
      }),
    ),
  );
  const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
  // The failure that started it, not the cancellations it caused.
  if (failures.length) throw failures.find((e) => !isCancellation(e)) ?? failures[0];
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/**
 * Whether the run ended because it was cancelled. Also true when a cancelled
 * activity could not confirm (its worker had died) and ended by its heartbeat
 * timeout instead: the run was still cancelled, not failed. A failure of the
 * run's own making (an ApplicationFailure: writers that did not start again)
 * stays a failure.
 */
export function cancelledRun(err: unknown): boolean {
  return isCancellation(err) || (CancellationScope.current().consideredCancelled && !(err instanceof ApplicationFailure));
}

/** The error a cancelled run ends with: a cancellation (the run shows as cancelled), whatever stopped the activity. */
export function asCancellation(err: unknown): unknown {
  if (isCancellation(err)) return err;
  let e = err as { message?: string; cause?: unknown };
  while (e.cause) e = e.cause as typeof e; // the innermost says what happened (e.g. a heartbeat timeout)
  return new CancelledFailure(`cancelled; the cancelled activity did not confirm: ${e.message ?? String(err)}`);
}
