import { ApplicationFailure, CancellationScope, condition, defineSignal, isCancellation, setHandler } from '@temporalio/workflow';
import { validateBackupId } from '../domain/names';
import type { RestoreInput, RestorePlan, RestoreResult, TargetPlan, TargetRestoreResult } from '../domain/plan';
import { quick, transfer } from './activities';
import { holdTargets } from './lock';
import { check, trackProgress, type Tracker } from './progress';
import { withOutcome } from './visibility';

/** Sent by `lifeboat approve`, `temporal workflow signal --name approve` or the Web UI. */
export const approveSignal = defineSignal<[{ by?: string }?]>('approve');

const DEFAULT_APPROVAL_SECONDS = 3600;

/**
 * Restores a backup as a saga: plan -> hold the targets (a second restore of
 * one is refused) -> approval (unless `yes`) -> stop writers -> verify every
 * artifact before anything destructive -> drop, recreate and restore ->
 * post-restore hooks -> start writers (on every path: success, failure,
 * cancel) -> sanity checks. A preflight (e.g. missing extensions) runs before
 * the writers are stopped.
 */
export async function restoreWorkflow(input: RestoreInput): Promise<RestoreResult> {
  return withOutcome(() => restore(input));
}

async function restore(input: RestoreInput): Promise<RestoreResult> {
  const progress = trackProgress('plan');
  const backupId = check(() => validateBackupId(input.backupId));
  let approved = input.yes === true;
  setHandler(approveSignal, () => {
    approved = true;
  });

  const plan = await quick.planRestore({ backupId, targets: input.targets, only: input.only, into: input.into, ...(input.subPrefix ? { subPrefix: input.subPrefix } : {}) });
  progress.total(plan.bytes);
  if (input.dryRun) {
    progress.set('done', 'dry run: nothing was changed');
    return { backupId, plan, dryRun: true, targets: [], steps: [] };
  }

  const names = plan.targets.map((t) => t.target);
  const held = await holdTargets(names, 'restore', 0);
  const steps: string[] = [];
  try {
    if (!approved) {
      progress.set('awaiting approval', "send the 'approve' signal (lifeboat restore … --yes, or the Web UI) to proceed");
      const timeout = input.approvalTimeoutSeconds ?? DEFAULT_APPROVAL_SECONDS;
      if (!(await condition(() => approved, timeout * 1000))) {
        throw ApplicationFailure.nonRetryable(`restore of backup '${backupId}' was not approved within ${timeout}s; nothing was changed`, 'NotApproved');
      }
    }
    progress.set('preflight');
    for (const t of plan.targets) await quick.preflightRestore({ target: t.target, backupId, files: t.artifacts.map((a) => a.file) });
    const targets = await withWritersStopped(names, steps, progress, () => restoreAll(plan, backupId, progress, steps));
    progress.set('checks');
    for (const t of names) steps.push(...(await transfer.sanityChecks({ target: t })).passed.map((p) => `${t}: check ${p}`));
    progress.set('done');
    return { backupId, plan, dryRun: false, targets, steps };
  } finally {
    await held.release();
  }
}

async function restoreAll(plan: RestorePlan, backupId: string, progress: Tracker, steps: string[]): Promise<TargetRestoreResult[]> {
  for (const t of plan.targets) {
    for (const a of t.artifacts) {
      progress.set('verify', `${t.target}/${a.file}`);
      await transfer.verifyStoredArtifact({ target: t.target, backupId, file: a.file });
    }
  }
  progress.set('restore');
  const results = await Promise.all(plan.targets.map((t) => restoreTarget(t, backupId, progress)));
  for (const t of plan.targets) {
    progress.set('post-restore', t.target);
    steps.push(...(await quick.runHooks({ target: t.target, phase: 'postRestore' })).ran.map((h) => `${t.target}: post-restore ${h}`));
  }
  return results;
}

/**
 * Stops the targets' writers, runs `body`, and starts the writers again
 * whatever happened, from a scope that cancellation cannot interrupt. A
 * failure to start them is reported along with the body's own failure.
 */
async function withWritersStopped<T>(targets: string[], steps: string[], progress: Tracker, body: () => Promise<T>): Promise<T> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  try {
    for (const t of targets) {
      progress.set('stop writers', t);
      steps.push(...(await quick.runHooks({ target: t, phase: 'stopWriters' })).ran.map((h) => `${t}: stopped writers (${h})`));
    }
    outcome = { ok: true, value: await body() };
  } catch (error) {
    outcome = { ok: false, error };
  }
  progress.set('start writers');
  const started = await CancellationScope.nonCancellable(() => Promise.allSettled(targets.map((t) => quick.runHooks({ target: t, phase: 'startWriters' }))));
  const startFailures = started.flatMap((r, i) => (r.status === 'rejected' ? [`${targets[i]}: ${causeMessage(r.reason)}`] : []));
  started.forEach((r, i) => r.status === 'fulfilled' && steps.push(...r.value.ran.map((h) => `${targets[i]}: started writers (${h})`)));
  if (startFailures.length) {
    const why = outcome.ok ? 'the restore succeeded' : `the restore failed too: ${causeMessage(outcome.error)}`;
    throw ApplicationFailure.nonRetryable(`writers could not be started again (${startFailures.join('; ')}); ${why}. Start them by hand.`, 'WritersNotStarted');
  }
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

function causeMessage(err: unknown): string {
  if (isCancellation(err)) return 'cancelled';
  const e = err as { message?: string; cause?: { message?: string } };
  return e.cause?.message ?? e.message ?? String(err);
}

async function restoreTarget(t: TargetPlan, backupId: string, progress: Tracker): Promise<TargetRestoreResult> {
  const started = Date.now();
  for (const a of t.artifacts) {
    progress.set('restore', `${t.target}: ${a.name} -> ${a.into}`);
    await transfer.restoreItem({ target: t.target, backupId, file: a.file, into: a.into, ...(t.subPrefix !== undefined ? { subPrefix: t.subPrefix } : {}) });
    progress.add(a.bytes);
  }
  return {
    target: t.target,
    kind: t.kind,
    restored: t.artifacts.map((a) => ({ name: a.name, into: a.into })),
    bytes: t.bytes,
    seconds: (Date.now() - started) / 1000,
  };
}
