import { ApplicationFailure, condition, defineSignal, setHandler } from '@temporalio/workflow';
import { validateBackupId } from '../domain/names';
import type { RestoreInput, RestoreResult, TargetPlan, TargetRestoreResult } from '../domain/plan';
import { quick, transfer } from './activities';
import { check, trackProgress, type Tracker } from './progress';

/** Sent by `lifeboat approve`, `temporal workflow signal --name approve` or the Web UI. */
export const approveSignal = defineSignal<[{ by?: string }?]>('approve');

const DEFAULT_APPROVAL_SECONDS = 3600;

/**
 * Restores a backup: plan, wait for approval (unless `yes`), verify every
 * artifact (checksum and age authentication) before anything destructive, then
 * drop, recreate and restore each item.
 */
export async function restoreWorkflow(input: RestoreInput): Promise<RestoreResult> {
  const progress = trackProgress('plan');
  const backupId = check(() => validateBackupId(input.backupId));
  let approved = input.yes === true;
  setHandler(approveSignal, () => {
    approved = true;
  });

  const plan = await quick.planRestore({ backupId, targets: input.targets, only: input.only, into: input.into });
  progress.total(plan.bytes);

  if (!approved) {
    progress.set('awaiting approval', "send the 'approve' signal (lifeboat restore … --yes, or the Web UI) to proceed");
    const timeout = input.approvalTimeoutSeconds ?? DEFAULT_APPROVAL_SECONDS;
    if (!(await condition(() => approved, timeout * 1000))) {
      throw ApplicationFailure.nonRetryable(`restore of backup '${backupId}' was not approved within ${timeout}s; nothing was changed`, 'NotApproved');
    }
  }

  progress.set('verify');
  for (const t of plan.targets) {
    for (const a of t.artifacts) {
      progress.set('verify', `${t.target}/${a.file}`);
      await transfer.verifyStoredArtifact({ target: t.target, backupId, file: a.file });
    }
  }

  progress.set('restore');
  const targets = await Promise.all(plan.targets.map((t) => restoreTarget(t, backupId, progress)));
  progress.set('done');
  return { backupId, targets };
}

async function restoreTarget(t: TargetPlan, backupId: string, progress: Tracker): Promise<TargetRestoreResult> {
  const started = Date.now();
  for (const a of t.artifacts) {
    progress.set('restore', `${t.target}: ${a.name} -> ${a.into}`);
    await transfer.restoreItem({ target: t.target, backupId, file: a.file, into: a.into });
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
