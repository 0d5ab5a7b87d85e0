import type { PruneInput, PruneResult, TargetPruneResult } from '../domain/plan';
import { on, quick, type Near } from './activities';
import { holdTargets } from './lock';
import { trackProgress, type Tracker } from './progress';
import { tagRun, withOutcome } from './visibility';

/** How long a prune waits for a backup or restore of a target to finish. */
const LOCK_WAIT_SECONDS = 3600;

/**
 * Retention: grandfather-father-son per target (config `retention`), never the
 * newest verified backup, whole backups only, manifest first; backups still
 * under Object Lock are skipped and reported; then stored objects no backup
 * references any more (a bucket's pool) are collected. `dryRun` deletes nothing.
 */
export async function pruneWorkflow(input: PruneInput = {}): Promise<PruneResult> {
  return withOutcome(() => pruneBody(input));
}

async function pruneBody(input: PruneInput = {}): Promise<PruneResult> {
  const progress = trackProgress('plan');
  const dryRun = input.dryRun === true;
  const run = await quick.describeRun({ targets: input.targets });
  tagRun(run.searchAttributes, 'prune', run.targets);
  const targets: TargetPruneResult[] = [];
  for (const ref of run.targets) {
    // Held like a backup holds it: a running backup's new objects are not garbage yet.
    const held = dryRun ? undefined : await holdTargets(run.idPrefix, [ref.target], 'prune', LOCK_WAIT_SECONDS, (t, holder) => progress.set('waiting', `target ${t} is busy: ${holder}`));
    try {
      targets.push(await pruneTarget(ref.target, dryRun, progress, ref, input.allowUnsigned));
    } finally {
      await held?.release();
    }
  }
  progress.set('done');
  return { dryRun, targets };
}

async function pruneTarget(target: string, dryRun: boolean, progress: Tracker, near: Near, allowUnsigned?: boolean): Promise<TargetPruneResult> {
  const plan = await quick.planPrune({ target, allowUnsigned });
  const result: TargetPruneResult = {
    target,
    kept: plan.decisions.filter((d) => d.keep).map((d) => ({ backupId: d.backupId, reasons: d.reasons })),
    deleted: [],
    locked: [],
    incomplete: plan.incomplete,
    damaged: plan.damaged,
    garbageDeleted: 0,
  };
  const doomed = [...plan.decisions.filter((d) => !d.keep).map((d) => d.backupId), ...plan.incomplete];
  for (const backupId of doomed) {
    if (dryRun) {
      result.deleted.push(backupId);
      continue;
    }
    progress.set('delete', `${target}/${backupId}`);
    const r = await quick.deleteBackup({ target, backupId });
    if (r.deleted) result.deleted.push(backupId);
    else result.locked.push({ backupId, until: r.lockedUntil ?? '' });
  }
  if (!dryRun) result.garbageDeleted = (await on(near).quick.collectGarbage({ target })).deleted;
  return result;
}
