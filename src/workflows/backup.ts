import { uuid4 } from '@temporalio/workflow';
import { makeBackupId, validateBackupId } from '../domain/names';
import type { BackupInput, BackupResult, TargetBackupResult, TargetRef } from '../domain/plan';
import type { Activities } from '../activities';
import { on, quick } from './activities';
import { together } from './cancel';
import { holdTargets } from './lock';
import { check, trackProgress, type Tracker } from './progress';
import { tagRun, withOutcome } from './visibility';

/** How long a backup waits for a restore of the same target to finish. */
const DEFAULT_LOCK_WAIT_SECONDS = 3600;

/**
 * Backs up targets at one moment under one backup id: per target, probe, dump
 * every item into the repository, then write the manifest last. Targets run in
 * parallel; a target's items run one after another so the server is not
 * loaded by several dumps at once. While a restore of a target runs, the
 * backup waits for it (up to `lockWaitSeconds`).
 */
export async function backupWorkflow(input: BackupInput = {}): Promise<BackupResult> {
  return withOutcome(async () => {
    const progress = trackProgress('plan');
    const backupId = check(() => (input.backupId ? validateBackupId(input.backupId) : makeBackupId(new Date(), uuid4().slice(0, 4))));
    const run = await quick.describeRun({ targets: input.targets });
    tagRun(run.searchAttributes, 'backup', run.targets);
    // The lock and the probes go out together: when nobody holds the target (the usual case) its
    // round trip costs the backup nothing. Nothing is dumped before the lock is held.
    const probes = run.targets.map((t) => on(t).quick.probeTarget({ target: t.target }));
    probes.forEach((p) => p.catch(() => undefined));
    const held = await holdTargets(
      run.idPrefix,
      run.targets.map((t) => t.target),
      'backup',
      input.lockWaitSeconds ?? DEFAULT_LOCK_WAIT_SECONDS,
      (t, holder) => progress.set('waiting', `target ${t} is busy: ${holder}`),
    );
    try {
      progress.set('backup', run.targets.map((t) => t.target).join(', '));
      // After a wait (a restore ran meanwhile), probe again: what it found before may have changed.
      const results = await together(run.targets.map((t, i) => () => backupTarget(t, backupId, progress, held.waited ? undefined : probes[i])));
      progress.set('done');
      return { backupId, targets: results };
    } finally {
      await held.release();
    }
  });
}

async function backupTarget(ref: TargetRef, backupId: string, progress: Tracker, probed?: ReturnType<Activities['probeTarget']>): Promise<TargetBackupResult> {
  const { target, kind } = ref;
  const near = on(ref);
  const startedAt = new Date();
  const { probe, items } = await (probed ?? near.quick.probeTarget({ target }));
  progress.expect(items.reduce((s, i) => s + (i.estimatedBytes ?? 0), 0));
  const artifacts = [];
  for (const item of items) {
    const a = await near.transfer.backupItem({ target, backupId, item });
    // Done: its live bytes give way to what it really read (the estimate was only an estimate).
    progress.add(a.plaintextBytes ?? a.bytes, `${target}/${item.item}`);
    artifacts.push(a);
  }
  const { manifest, bytes } = await quick.finishBackup({ target, kind, backupId, probe, artifacts, startedAt: startedAt.toISOString() });
  return { target, kind, artifacts: artifacts.length, bytes, seconds: (Date.now() - startedAt.getTime()) / 1000, manifest };
}
