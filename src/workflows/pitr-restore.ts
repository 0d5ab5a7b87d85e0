import { ApplicationFailure, CancellationScope, condition, defineSignal, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import type { PitrRestoreInput, PitrRestoreResult } from '../domain/pitr';
import { quick as anyQueue } from './activities';
import { holdTargets } from './lock';
import { pitrOn } from './pitr-proxy';
import { trackProgress, type Tracker } from './progress';
import { withOutcome } from './visibility';

/** The same `approve` signal as every restore (`lifeboat approve`, the Web UI's Send Signal). */
const approveSignal = defineSignal<[{ by?: string }?]>('approve');

const DEFAULT_APPROVAL_SECONDS = 3600;
const RECOVERY_TIMEOUT_SECONDS = 6 * 3600;

/**
 * Restores a PITR target to a time (or to the end of its archive) as a saga:
 * plan (a time outside the recoverable window is refused here, before
 * anything stops) -> approval -> hold the target -> stop writers -> verify the
 * repository -> stop the server -> pgbackrest restore --delta --type=time ->
 * start the server (on every path once it was stopped) -> wait until recovery
 * ended and it takes writes -> post-restore hooks -> start writers (on every
 * path) -> checks. pgBackRest, the server and the data directory are on the
 * target's worker; writer hooks run where the logical restore runs them.
 */
export async function pitrRestoreWorkflow(input: PitrRestoreInput): Promise<PitrRestoreResult> {
  return withOutcome(() => restoreToTime(input));
}

async function restoreToTime(input: PitrRestoreInput): Promise<PitrRestoreResult> {
  const progress = trackProgress('plan');
  let approvedBy: string | undefined = input.yes ? '--yes' : undefined;
  setHandler(approveSignal, (a) => {
    approvedBy ??= a?.by?.trim() || 'approve signal';
  });
  const info = await pitrOn().quick.pitrTarget({ target: input.target });
  const { quick, transfer } = pitrOn(info.taskQueue);
  const plan = await quick.pitrPlanRestore({ target: input.target, ...(input.toTime ? { toTime: input.toTime } : {}), ...(input.latest ? { latest: true } : {}) });
  if (input.dryRun) {
    progress.set('done', 'dry run: nothing was changed');
    return { plan, dryRun: true, seconds: 0, lastReplayed: null, steps: [] };
  }
  if (!approvedBy) {
    const id = workflowInfo().workflowId;
    progress.set('awaiting approval', `run \`lifeboat approve ${id}\` or send the approve signal (Web UI: Send Signal "approve")`);
    const timeout = input.approvalTimeoutSeconds ?? DEFAULT_APPROVAL_SECONDS;
    if (!(await condition(() => approvedBy !== undefined, timeout * 1000))) {
      throw ApplicationFailure.nonRetryable(`restore of ${input.target} to ${plan.targetTime ?? 'the latest time'} was not approved within ${timeout}s; nothing was changed`, 'NotApproved');
    }
  }
  const held = await holdTargets([input.target], 'restore', 0);
  const steps: string[] = [`approved by ${approvedBy}`];
  const started = Date.now();
  try {
    const lastReplayed = await withWriters(input.target, steps, progress, async () => {
      progress.set('verify', `${input.target}: pgbackrest verify`);
      steps.push(`verify: ${(await transfer.pitrVerify({ target: input.target })).summary.split('\n').at(-1) ?? 'ok'}`);
      const replayed = await withServerStopped(input.target, info.taskQueue, steps, progress, async () => {
        progress.set('restore', `${input.target}: ${plan.mode === 'time' ? `to ${plan.targetTime}` : 'to the latest time'} from ${plan.backup}`);
        const r = await transfer.pitrRestore({ target: input.target, ...(plan.targetTime ? { targetTime: plan.targetTime } : {}) });
        steps.push(`${input.target}: pgbackrest restore ${plan.mode === 'time' ? `to ${plan.targetTime}` : 'to the latest time'} in ${r.seconds}s`);
      });
      progress.set('post-restore', input.target);
      steps.push(...(await anyQueue.runHooks({ target: input.target, phase: 'postRestore' })).ran.map((h) => `${input.target}: post-restore ${h}`));
      return replayed;
    });
    progress.set('checks');
    steps.push(...(await anyQueue.sanityChecks({ target: input.target })).passed.map((p) => `${input.target}: check ${p}`));
    progress.set('done');
    return { plan, dryRun: false, seconds: (Date.now() - started) / 1000, lastReplayed, steps };
  } finally {
    await held.release();
  }
}

/**
 * Stops the server, runs `body` (the restore), and starts the server again
 * whatever happened, then waits until recovery ended and it takes writes.
 * A failure to start it is reported with the body's own failure.
 */
async function withServerStopped(target: string, taskQueue: string, steps: string[], progress: Tracker, body: () => Promise<void>): Promise<string | null> {
  const { quick, transfer } = pitrOn(taskQueue);
  const workflowId = workflowInfo().workflowId;
  progress.set('stop server', target);
  steps.push(...(await quick.pitrServer({ target, phase: 'stopServer', workflowId })).ran.map((h) => `${target}: stopped the server (${h})`));
  let failure: unknown;
  try {
    await body();
  } catch (err) {
    failure = err;
  }
  progress.set('start server', target);
  const start = await CancellationScope.nonCancellable(async () => {
    try {
      const ran = (await quick.pitrServer({ target, phase: 'startServer', workflowId })).ran;
      steps.push(...ran.map((h) => `${target}: started the server (${h})`));
      if (failure) return { ok: true as const, replayed: null };
      progress.set('recovery', `${target}: waiting until recovery ends and the server takes writes`);
      return { ok: true as const, replayed: (await transfer.pitrWaitWritable({ target, timeoutSeconds: RECOVERY_TIMEOUT_SECONDS })).lastReplayed };
    } catch (err) {
      return { ok: false as const, error: err };
    }
  });
  if (!start.ok) {
    const why = failure ? `the restore failed too: ${causeMessage(failure)}` : 'the restore itself succeeded';
    throw ApplicationFailure.nonRetryable(`the server of target ${target} did not come back (${causeMessage(start.error)}); ${why}. Look at its log and start it by hand.`, 'ServerNotStarted');
  }
  if (failure) throw failure;
  steps.push(`${target}: recovery ended, the server takes writes (last replayed transaction ${start.replayed ?? 'none'})`);
  return start.replayed;
}

/** Stops the target's writers, runs `body`, and starts them again on every path (success, failure, cancel). */
async function withWriters<T>(target: string, steps: string[], progress: Tracker, body: () => Promise<T>): Promise<T> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    progress.set('stop writers', target);
    steps.push(...(await anyQueue.runHooks({ target, phase: 'stopWriters' })).ran.map((h) => `${target}: stopped writers (${h})`));
    outcome = { ok: true, value: await body() };
  } catch (error) {
    outcome = { ok: false, error };
  }
  progress.set('start writers', target);
  const started = await CancellationScope.nonCancellable(() => Promise.allSettled([anyQueue.runHooks({ target, phase: 'startWriters' })]));
  const r = started[0]!;
  if (r.status === 'rejected') {
    const why = outcome.ok ? 'the restore succeeded' : `the restore failed too: ${causeMessage(outcome.error)}`;
    throw ApplicationFailure.nonRetryable(`writers of ${target} could not be started again (${causeMessage(r.reason)}); ${why}. Start them by hand.`, 'WritersNotStarted');
  }
  steps.push(...r.value.ran.map((h) => `${target}: started writers (${h})`));
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

function causeMessage(err: unknown): string {
  if (isCancellation(err)) return 'cancelled';
  let e = err as { message?: string; cause?: unknown; name?: string };
  while (e.cause && e.name !== 'ApplicationFailure') e = e.cause as typeof e;
  return e.message ?? String(err);
}
