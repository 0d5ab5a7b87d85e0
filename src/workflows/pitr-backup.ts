import { workflowInfo } from '@temporalio/workflow';
import type { PitrBackupInput, PitrBackupResult } from '../domain/pitr';
import { on, quick } from './activities';
import { holdTargets } from './lock';
import { trackProgress } from './progress';
import { tagRun, withOutcome } from './visibility';

const DEFAULT_LOCK_WAIT_SECONDS = 3600;

/**
 * A pgBackRest backup of one target (full, diff or incr), on the worker
 * beside its database (the target's task queue): write the config and create
 * the stanza (idempotent), `check` that archiving works, back up (a retried
 * attempt resumes the aborted backup), expire by the retention, and keep
 * `pgbackrest info` in lifeboat's catalog for `ls`. Holds the target like any
 * backup, so it waits while a restore of it runs.
 */
export async function pitrBackupWorkflow(input: PitrBackupInput): Promise<PitrBackupResult> {
  return withOutcome(async () => {
    const progress = trackProgress('plan');
    await quick.pitrTarget({ target: input.target });
    const run = await quick.describeRun({ targets: [input.target] });
    tagRun(run.searchAttributes, 'backup', run.targets);
    const { quick: near, transfer } = on(run.targets[0]);
    const held = await holdTargets(run.idPrefix, [input.target], 'backup', input.lockWaitSeconds ?? DEFAULT_LOCK_WAIT_SECONDS, (t, holder) =>
      progress.set('waiting', `target ${t} is busy: ${holder}`),
    );
    try {
      progress.set('setup', `${input.target}: stanza-create, check`);
      await transfer.pitrSetup({ target: input.target, check: true });
      progress.set(`backup ${input.type}`, input.target);
      const b = await transfer.pitrBackup({ target: input.target, type: input.type, token: workflowInfo().runId });
      progress.set('expire');
      const { expired } = await transfer.pitrExpire({ target: input.target });
      progress.set('catalog');
      const c = await near.pitrCatalog({ target: input.target });
      progress.set('done');
      return {
        target: input.target,
        type: b.type,
        label: b.label,
        seconds: b.seconds,
        databaseBytes: b.databaseBytes,
        repositoryBytes: b.repositoryBytes,
        ranOn: b.ranOn,
        expired,
        window: c.window,
      };
    } finally {
      await held.release();
    }
  });
}
