import { ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import type { PitrRestoreInput, PitrRestoreResult } from '../domain/pitr';
import type { HookContext, TargetRef } from '../domain/plan';
import { on, quick } from './activities';
import { holdTargets } from './lock';
import { trackProgress, type Tracker } from './progress';
import { approvalGate, causeMessage, runHooks, withWritersStopped } from './saga';
import { tagRun, withOutcome } from './visibility';

const DEFAULT_APPROVAL_SECONDS = 3600;
const RECOVERY_TIMEOUT_SECONDS = 6 * 3600;

/**
 * Restores a PITR target to a time (or to the end of its archive) with the
 * steps every restore shares (src/workflows/saga.ts): plan (a time outside
 * the recoverable window is refused here, before anything stops) ->
 * approval -> hold the target -> stop writers -> verify the repository ->
 * stop the server -> pgbackrest restore --delta --type=time -> start the
 * server (on every path once it was stopped) -> wait until recovery ended and
 * it takes writes -> post-restore hooks -> start writers (on every path) ->
 * checks. pgBackRest, the server and the data directory are the target's
 * worker's (its task queue).
 */
export async function pitrRestoreWorkflow(input: PitrRestoreInput): Promise<PitrRestoreResult> {
  return withOutcome(() => restoreToTime(input));
}

async function restoreToTime(input: PitrRestoreInput): Promise<PitrRestoreResult> {
  const progress = trackProgress('plan');
  const approval = approvalGate(input.yes === true);
  await quick.pitrTarget({ target: input.target });
  const run = await quick.describeRun({ targets: [input.target] });
  tagRun(run.searchAttributes, 'restore', run.targets);
  const ref = run.targets[0]!;
  const { transfer } = on(ref);
  const plan = await transfer.pitrPlanRestore({ target: input.target, ...(input.toTime ? { toTime: input.toTime } : {}), ...(input.latest ? { latest: true } : {}) });
  if (input.dryRun) {
    progress.set('done', 'dry run: nothing was changed');
    return { plan, dryRun: true, seconds: 0, lastReplayed: null, steps: [] };
  }
  const workflowId = workflowInfo().workflowId;
  const point = plan.targetTime ?? 'the end of its archive';
  const approvedBy = await approval.wait(
    `restore of ${input.target} to ${point}`,
    input.approvalTimeoutSeconds ?? DEFAULT_APPROVAL_SECONDS,
    progress,
    workflowId,
    false,
  );
  const held = await holdTargets(run.idPrefix, [input.target], 'restore', 0);
  const steps: string[] = [`approved by ${approvedBy}`];
  const started = Date.now();
  const context: HookContext = { operation: 'restore', mode: 'in-place', backupId: plan.backup, workflowId, items: [{ item: 'server', name: input.target, into: input.target }] };
  let restored = false;
  const touched = () => (restored ? `the server of ${input.target} was restored to ${point}` : `the data directory of ${input.target} was not restored`);
  try {
    const lastReplayed = await withWritersStopped(
      [ref],
      context,
      steps,
      progress,
      async () => {
        progress.set('verify', `${input.target}: pgbackrest verify`);
        steps.push(`${input.target}: pgbackrest verify ${(await transfer.pitrVerify({ target: input.target })).summary.split('\n').at(-1) ?? 'ok'}`);
        const replayed = await withServerStopped(ref, steps, progress, async () => {
          progress.set('restore', `${input.target}: to ${point} from ${plan.backup}`);
          const r = await transfer.pitrRestore({ target: input.target, ...(plan.targetTime ? { targetTime: plan.targetTime } : {}) });
          restored = true;
          steps.push(`${input.target}: pgbackrest restore to ${point} in ${r.seconds}s`);
        });
        await runHooks(ref, 'postRestore', context, steps, progress, 'post-restore');
        return replayed;
      },
      touched,
    );
    progress.set('checks');
    steps.push(...(await transfer.sanityChecks({ target: input.target })).passed.map((p) => `${input.target}: check ${p}`));
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
async function withServerStopped(ref: TargetRef, steps: string[], progress: Tracker, body: () => Promise<void>): Promise<string | null> {
  const { transfer } = on(ref);
  const target = ref.target;
  const workflowId = workflowInfo().workflowId;
  progress.set('stop server', target);
  steps.push(...(await transfer.pitrServer({ target, phase: 'stopServer', workflowId })).ran.map((h) => `${target}: stopped the server (${h})`));
  let failure: unknown;
  try {
    await body();
  } catch (err) {
    failure = err;
  }
  progress.set('start server', target);
  const start = await CancellationScope.nonCancellable(async () => {
    try {
      const ran = (await transfer.pitrServer({ target, phase: 'startServer', workflowId })).ran;
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
