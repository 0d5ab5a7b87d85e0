import { ApplicationFailure, CancellationScope, condition, defineSignal, isCancellation, setHandler } from '@temporalio/workflow';
import type { HookContext, HookInfo, HookPhase, TargetRef } from '../domain/plan';
import { hookActivities, on } from './activities';
import { asCancellation, cancelledRun } from './cancel';
import type { Tracker } from './progress';

/**
 * The steps every restore shares (logical restores, restores to a point in
 * time): approval, writer hooks that are always started again, post-restore
 * hooks, checks. Each hook runs as its own activity with its own timeout and
 * retries (src/workflows/activities.ts) and gets the run's context.
 */

/** Sent by `lifeboat approve`, `temporal workflow signal --name approve` or the Web UI. */
export const approveSignal = defineSignal<[{ by?: string }?]>('approve');

export interface Approval {
  /**
   * Waits for approval: `--yes` counts unless `signalOnly` (a store that
   * always asks); fails with NotApproved after `timeoutSeconds`. Returns who
   * approved: `--yes`, or the `by` of the signal.
   */
  wait(what: string, timeoutSeconds: number, progress: Tracker, workflowId: string, signalOnly: boolean): Promise<string>;
}

export function approvalGate(yes: boolean): Approval {
  let bySignal: string | undefined;
  setHandler(approveSignal, (a) => {
    bySignal ??= a?.by?.trim() || 'approve signal';
  });
  return {
    async wait(what, timeoutSeconds, progress, workflowId, signalOnly) {
      if (yes && !signalOnly) return '--yes';
      if (bySignal) return bySignal;
      progress.set(
        'awaiting approval',
        `${signalOnly ? `${what}. ` : ''}run \`lifeboat approve ${workflowId}\` or send the approve signal (Web UI: Send Signal "approve"; temporal workflow signal --workflow-id ${workflowId} --name approve)`,
      );
      if (!(await condition(() => bySignal !== undefined, timeoutSeconds * 1000))) {
        throw ApplicationFailure.nonRetryable(`${what} was not approved within ${timeoutSeconds}s; nothing was changed`, 'NotApproved');
      }
      return bySignal!;
    },
  };
}

/** Runs the configured hooks of one phase of one target, in order, each as its own activity. */
export async function runHooks(ref: TargetRef, phase: HookPhase, context: HookContext, steps: string[], progress: Tracker, label: string): Promise<void> {
  const hooks: HookInfo[] = await on(ref).quick.describeHooks({ target: ref.target, phase });
  for (const hook of hooks) {
    progress.set(label, `${ref.target}: ${hook.name}`);
    try {
      await hookActivities(hook, ref).runHook({ target: ref.target, phase, index: hook.index, context });
    } catch (err) {
      if (cancelledRun(err)) throw asCancellation(err);
      throw ApplicationFailure.create({ type: 'HookFailed', nonRetryable: true, message: `${phase} hook ${hook.index + 1} of target ${ref.target} failed: ${causeMessage(err)}`, cause: err as Error });
    }
    steps.push(`${ref.target}: ${label} (${hook.name})`);
  }
}

/**
 * Stops the writers of `refs`, runs `body`, and starts the writers again
 * whatever happened (success, failure, cancellation), from a scope that
 * cancellation cannot interrupt. Every failure message says what state the
 * targets were left in.
 */
export async function withWritersStopped<T>(
  refs: TargetRef[],
  context: HookContext,
  steps: string[],
  progress: Tracker,
  body: () => Promise<T>,
  touched: () => string,
): Promise<T> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown; stage: 'stop writers' | 'restore' };
  try {
    for (const ref of refs) await runHooks(ref, 'stopWriters', context, steps, progress, 'stop writers');
  } catch (error) {
    outcome = { ok: false, error, stage: 'stop writers' };
  }
  outcome ??= await body().then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error, stage: 'restore' as const }),
  );
  const cancelled = !outcome.ok && cancelledRun(outcome.error);
  const ended = outcome.ok ? 'success' : cancelled ? 'cancelled' : 'failed';
  progress.set('start writers');
  const started = await CancellationScope.nonCancellable(() =>
    Promise.allSettled(refs.map((ref) => runHooks(ref, 'startWriters', { ...context, outcome: ended }, steps, progress, 'start writers'))),
  );
  const startFailures = started.flatMap((r, i) => (r.status === 'rejected' ? [`${refs[i]!.target}: ${causeMessage(r.reason)}`] : []));
  if (startFailures.length) {
    const why = outcome.ok ? `the restore itself succeeded (${touched()})` : `the restore failed too: ${causeMessage(outcome.error)}`;
    throw ApplicationFailure.nonRetryable(`writers could not be started again (${startFailures.join('; ')}); ${why}. Start them by hand.`, 'WritersNotStarted');
  }
  if (outcome.ok) return outcome.value;
  if (cancelled) throw asCancellation(outcome.error);
  const state = outcome.stage === 'stop writers' ? 'nothing was verified, dropped or restored' : touched();
  throw ApplicationFailure.create({
    type: failureType(outcome.error),
    nonRetryable: true,
    message: `${causeMessage(outcome.error)}; ${state}; writers were started again`,
    cause: outcome.error as Error,
  });
}

export function causeMessage(err: unknown): string {
  if (isCancellation(err)) return 'cancelled';
  let e = err as { message?: string; cause?: unknown };
  // Activity and child failures wrap the failure that says what happened.
  while (e.cause && (e as { name?: string }).name !== 'ApplicationFailure') e = e.cause as typeof e;
  return e.message ?? String(err);
}

export function failureType(err: unknown): string {
  let e = err as { type?: string; cause?: unknown };
  while (e && !e.type && e.cause) e = e.cause as typeof e;
  return e?.type ?? 'RestoreFailed';
}
