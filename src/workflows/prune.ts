import type { PruneInput, PruneResult, TargetPruneResult } from '../domain/plan';
import { quick } from './activities';
import { withOutcome } from './visibility';
import { trackProgress } from './progress';

/**
 * Retention: grandfather-father-son per target (config `retention`), never the
 * newest verified backup, whole backups only, manifest first; backups still
 * under Object Lock are skipped and reported. `dryRun` deletes nothing.
 */
export async function pruneWorkflow(input: PruneInput = {}): Promise<PruneResult> {
  return withOutcome(() => pruneBody(input));
}

async function pruneBody(input: PruneInput = {}): Promise<PruneResult> {
  const progress = trackProgress('plan');
  const dryRun = input.dryRun === true;
  const refs = await quick.describeTargets({ targets: input.targets });
  const targets: TargetPruneResult[] = [];
  for (const { target } of refs) {
    const plan = await quick.planPrune({ target });
    const result: TargetPruneResult = {
      target,
      kept: plan.decisions.filter((d) => d.keep).map((d) => ({ backupId: d.backupId, reasons: d.reasons })),
      deleted: [],
      locked: [],
      incomplete: plan.incomplete,
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
    targets.push(result);
  }
  progress.set('done');
  return { dryRun, targets };
}
