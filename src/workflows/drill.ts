import { ApplicationFailure, CancellationScope, executeChild, uuid4, workflowInfo } from '@temporalio/workflow';
import { describeMarkers, markersOk } from '../domain/markers';
import { makeBackupId } from '../domain/names';
import type { DrillInput, DrillResult, DrillStoreResult, TargetRef } from '../domain/plan';
import { on, quick } from './activities';
import { backupWorkflow } from './backup';
import { asCancellation, cancelledRun, together } from './cancel';
import { trackProgress, type Tracker } from './progress';
import { restoreWorkflow } from './restore';
import { tagRun, withOutcome } from './visibility';

type Seed = { name: string; count: number; scratch: string; inPlace: boolean };

/**
 * The drill: seed nonce-marked markers, back up, restore from the repository,
 * and prove every marker came back. `scratch` restores under a temporary name
 * and drops it afterwards: it touches nothing of the target (no writer hooks,
 * no post-restore hooks; the target's checks run against the copy).
 * `in-place` is the runbook's drop-and-restore, for development and staging:
 * the restore stops the writers before it drops anything. Every drill, passed
 * or failed, is recorded in the repository for `lifeboat report`.
 */
export async function drillWorkflow(input: DrillInput = {}): Promise<DrillResult> {
  return withOutcome(() => drillBody(input));
}

async function drillBody(input: DrillInput = {}): Promise<DrillResult> {
  const progress = trackProgress('seed');
  const startedAt = new Date().toISOString();
  const mode = input.mode ?? 'scratch';
  const nonce = uuid4();
  const backupId = makeBackupId(new Date(), nonce.replace(/-/g, '').slice(0, 4));
  const run = await quick.describeRun({ targets: input.targets });
  tagRun(run.searchAttributes, 'drill', run.targets);

  let result: DrillResult;
  const record = (r: DrillResult) =>
    CancellationScope.nonCancellable(() => quick.recordDrill({ record: { ...r, workflowId: workflowInfo().workflowId, startedAt, finishedAt: new Date().toISOString() } }));
  try {
    result = await drill(run.targets, mode, nonce, backupId, progress);
  } catch (err) {
    const message = err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err);
    const cancelled = cancelledRun(err);
    result = { ok: false, nonce, mode, backupId, stores: [], failures: [cancelled ? 'cancelled' : message] };
    if (cancelled) {
      await record(result);
      throw asCancellation(err);
    }
  }
  await record(result);
  progress.set('done');
  if (!result.ok) {
    throw ApplicationFailure.create({ type: result.stores.length ? 'MarkersMissing' : 'DrillFailed', nonRetryable: true, message: `drill failed: ${result.failures.join('; ')}`, details: [result] });
  }
  return result;
}

async function drill(refs: TargetRef[], mode: DrillResult['mode'], nonce: string, backupId: string, progress: Tracker): Promise<DrillResult> {
  const targets = refs.map((r) => r.target);
  const seeds: Seed[] = await together(refs.map((r) => () => on(r).quick.seedMarkers({ target: r.target, nonce })));

  progress.set('backup');
  const backup = await executeChild(backupWorkflow, { args: [{ targets, backupId }], workflowId: `${workflowInfo().workflowId}/backup` });

  // A target whose restore replaces more than its drill item (a Vault server) is drilled on a scratch copy whatever the mode.
  const modeOf = (i: number): DrillResult['mode'] => (mode === 'in-place' && seeds[i]!.inPlace ? 'in-place' : 'scratch');
  const into = (i: number) => (modeOf(i) === 'scratch' ? seeds[i]!.scratch : seeds[i]!.name);
  try {
    progress.set('restore');
    const restore = await executeChild(restoreWorkflow, {
      args: [
        {
          backupId,
          targets,
          yes: true,
          operation: 'drill' as const,
          // In place: the restore drops each item once writers are stopped and the artifacts verified; copies get the target's checks.
          dropFirst: mode === 'in-place',
          checkCopies: true,
          only: Object.fromEntries(refs.map((r, i) => [r.target, [seeds[i]!.name]])),
          into: Object.fromEntries(refs.map((r, i) => [r.target, { [seeds[i]!.name]: into(i) }])),
        },
      ],
      workflowId: `${workflowInfo().workflowId}/restore`,
    });

    progress.set('count markers');
    const stores: DrillStoreResult[] = await together(
      refs.map((r, i) => async () => {
        const markers = await on(r).quick.countMarkers({ target: r.target, name: into(i), nonce, expected: seeds[i]!.count });
        const b = backup.targets.find((t) => t.target === r.target)!;
        const rs = restore.targets.find((t) => t.target === r.target)!;
        return { target: r.target, kind: r.kind, mode: modeOf(i), markers, backupSeconds: b.seconds, restoreSeconds: rs.seconds, artifactBytes: b.bytes };
      }),
    );
    const failures = stores.filter((s) => !markersOk(s.markers)).map((s) => describeMarkers(s.target, s.markers));
    return { ok: failures.length === 0, nonce, mode, backupId, stores, failures };
  } finally {
    // Runs even when the drill is cancelled: a scratch copy is never left behind.
    const scratch = refs.filter((_, i) => modeOf(i) === 'scratch');
    await CancellationScope.nonCancellable(() => Promise.allSettled(scratch.map((r) => on(r).quick.dropItem({ target: r.target, name: seeds[refs.indexOf(r)]!.scratch }))));
  }
}
