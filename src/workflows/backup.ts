import { uuid4 } from '@temporalio/workflow';
import { makeBackupId, validateBackupId } from '../domain/names';
import type { BackupInput, BackupResult, TargetBackupResult, TargetRef } from '../domain/plan';
import { quick, transfer } from './activities';
import { check, trackProgress, type Tracker } from './progress';

/**
 * Backs up targets at one moment under one backup id: per target, probe, dump
 * every item into the repository, then write the manifest last. Targets run in
 * parallel; a target's items run one after another so the server is not
 * loaded by several dumps at once.
 */
export async function backupWorkflow(input: BackupInput = {}): Promise<BackupResult> {
  const progress = trackProgress('plan');
  const backupId = check(() => (input.backupId ? validateBackupId(input.backupId) : makeBackupId(new Date(), uuid4().slice(0, 4))));
  const targets = await quick.describeTargets({ targets: input.targets });
  progress.set('backup', targets.map((t) => t.target).join(', '));
  const results = await Promise.all(targets.map((t) => backupTarget(t, backupId, progress)));
  progress.set('done');
  return { backupId, targets: results };
}

async function backupTarget({ target, kind }: TargetRef, backupId: string, progress: Tracker): Promise<TargetBackupResult> {
  const startedAt = new Date();
  const { probe, items } = await quick.probeTarget({ target });
  const artifacts = [];
  for (const item of items) {
    const a = await transfer.backupItem({ target, backupId, item });
    progress.add(a.bytes);
    artifacts.push(a);
  }
  const { manifest, bytes } = await quick.finishBackup({ target, kind, backupId, probe, artifacts, startedAt: startedAt.toISOString() });
  return { target, kind, artifacts: artifacts.length, bytes, seconds: (Date.now() - startedAt.getTime()) / 1000, manifest };
}
