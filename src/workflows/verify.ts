import { ApplicationFailure } from '@temporalio/workflow';
import { validateBackupId } from '../domain/names';
import type { ArtifactVerification, TargetVerification, VerifyInput, VerifyResult } from '../domain/plan';
import { on, quick } from './activities';
import { check, trackProgress } from './progress';
import { tagRun, withOutcome } from './visibility';

/**
 * Proves a backup can be restored without touching any database: every
 * artifact's SHA-256, its age authentication to the last chunk, and that the
 * restore tool can read it. The result is stored next to the backup; a failed
 * check is a result (ok: false), not a failed run.
 */
export async function verifyWorkflow(input: VerifyInput): Promise<VerifyResult> {
  return withOutcome(() => verifyBody(input));
}

async function verifyBody(input: VerifyInput): Promise<VerifyResult> {
  const progress = trackProgress('plan');
  const backupId = check(() => validateBackupId(input.backupId));
  const plan = await quick.planRestore({ backupId, targets: input.targets, allowUnsigned: input.allowUnsigned });
  const run = await quick.describeRun({ targets: plan.targets.map((t) => t.target) });
  tagRun(run.searchAttributes, 'verify', run.targets);
  const refs = new Map(run.targets.map((r) => [r.target, r]));
  progress.total(plan.bytes);
  const targets: TargetVerification[] = [];
  for (const t of plan.targets) {
    const artifacts: ArtifactVerification[] = [];
    for (const a of t.artifacts) {
      progress.set('verify', `${t.target}/${a.file}`);
      try {
        const r = await on(refs.get(t.target)).transfer.verifyStoredArtifact({ target: t.target, backupId, file: a.file, inspect: true, allowUnsigned: input.allowUnsigned });
        artifacts.push({ file: a.file, ok: true, bytes: r.bytes, ...(r.inspected ? { detail: r.inspected } : {}) });
      } catch (err) {
        const cause = (err as { cause?: unknown }).cause;
        if (!(cause instanceof ApplicationFailure)) throw err;
        artifacts.push({ file: a.file, ok: false, bytes: a.bytes, error: { type: cause.type ?? 'Error', message: cause.message } });
      }
      progress.add(a.bytes, `${t.target}/${a.file}`);
    }
    const result: TargetVerification = { backupId, target: t.target, kind: t.kind, verifiedAt: new Date().toISOString(), ok: artifacts.every((a) => a.ok), artifacts };
    await quick.recordVerification({ result });
    targets.push(result);
  }
  progress.set('done');
  return { ok: targets.every((t) => t.ok), backupId, targets };
}
