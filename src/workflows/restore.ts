import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import { validateBackupId } from '../domain/names';
import type { HookContext, RestoreInput, RestorePlan, RestoreResult, TargetPlan, TargetRef, TargetRestoreResult } from '../domain/plan';
import { on, quick } from './activities';
import { together } from './cancel';
import { holdTargets } from './lock';
import { check, trackProgress, type Tracker } from './progress';
import { approvalGate, runHooks, withWritersStopped } from './saga';
import { tagRun, withOutcome } from './visibility';

export { approveSignal } from './saga';

const DEFAULT_APPROVAL_SECONDS = 3600;

/**
 * Restores a backup as a saga: plan -> approval (unless `yes`; some stores,
 * e.g. Vault, always ask) -> the plan again, then hold the targets (a waiting
 * approval holds nothing, so nightly backups go on) -> preflight -> stop
 * writers -> verify every artifact before anything destructive -> (drop) ->
 * restore -> post-restore hooks -> start writers (on every path) -> checks.
 *
 * Only targets restored in place get the writer hooks, post-restore hooks and
 * checks: a copy under another name (`--as`, a scratch drill) touches nothing
 * of the target, so its writers keep running.
 */
export async function restoreWorkflow(input: RestoreInput): Promise<RestoreResult> {
  return withOutcome(() => restore(input));
}

async function restore(input: RestoreInput): Promise<RestoreResult> {
  const progress = trackProgress('plan');
  const backupId = check(() => validateBackupId(input.backupId));
  const approval = approvalGate(input.yes === true);
  const planInput = { backupId, targets: input.targets, only: input.only, into: input.into, allowUnsigned: input.allowUnsigned, ...(input.subPrefix ? { subPrefix: input.subPrefix } : {}) };
  const plan = await quick.planRestore(planInput);
  const run = await quick.describeRun({ targets: plan.targets.map((t) => t.target) });
  tagRun(run.searchAttributes, input.operation ?? 'restore', run.targets);
  progress.total(plan.bytes);
  if (input.dryRun) {
    progress.set('dry run');
    for (const t of plan.targets) {
      const near = run.targets.find((r) => r.target === t.target) ?? {};
      const lines = [];
      for (const a of t.artifacts) {
        const sub = t.subPrefix !== undefined ? { subPrefix: t.subPrefix } : {};
        lines.push(...(await on(near).transfer.previewRestore({ target: t.target, backupId, file: a.file, into: a.into, allowUnsigned: input.allowUnsigned, ...sub })));
      }
      if (lines.length) t.preview = lines;
    }
    progress.set('done', 'dry run: nothing was changed');
    return { backupId, plan, dryRun: true, targets: [], steps: [] };
  }

  const workflowId = workflowInfo().workflowId;
  const mustAsk = plan.targets.filter((t) => t.approvalRequired && t.mode === 'in-place');
  const what = `restore of backup '${backupId}'${mustAsk.length ? ` (${mustAsk.map((t) => `${t.target}: ${t.notice}`).join('; ')})` : ''}`;
  const approvedBy = await approval.wait(what, input.approvalTimeoutSeconds ?? DEFAULT_APPROVAL_SECONDS, progress, workflowId, mustAsk.length > 0);

  // The world may have moved while the approval waited (a prune, a new manifest): restore only what was approved.
  // `streamed` is how, not what: a plan made before a worker upgrade lacks it and is still the same plan (the first one goes on).
  const planned = (p: RestorePlan) => JSON.stringify(p, (k, v: unknown) => (k === 'streamed' ? undefined : v));
  const again = await quick.planRestore(planInput);
  if (planned(again) !== planned(plan)) {
    throw ApplicationFailure.nonRetryable(`the plan of backup '${backupId}' changed while the restore waited for approval; nothing was changed. Start the restore again to see the new plan`, 'PlanChanged');
  }

  const refs = new Map(run.targets.map((r) => [r.target, r]));
  // A copy (a scratch drill) touches nothing of the target: it may wait for a backup to finish; an in-place restore is refused at once.
  const copiesOnly = plan.targets.every((t) => t.mode === 'copy');
  const held = await holdTargets(run.idPrefix, [...refs.keys()], 'restore', copiesOnly ? 3600 : 0, (t, holder) => progress.set('waiting', `target ${t} is busy: ${holder}`));
  const steps: string[] = [`approved by ${approvedBy}`];
  try {
    progress.set('preflight');
    for (const t of plan.targets) await on(refs.get(t.target)!).quick.preflightRestore({ target: t.target, backupId, files: t.artifacts.map((a) => a.file), ...ownerOf(input), allowUnsigned: input.allowUnsigned });
    const inPlace = plan.targets.filter((t) => t.mode === 'in-place').map((t) => refs.get(t.target)!);
    const context: HookContext = { operation: input.operation ?? 'restore', mode: 'in-place', backupId, workflowId, items: plan.targets.flatMap((t) => t.artifacts.map((a) => ({ item: a.item, name: a.name, into: a.into }))) };
    const state = { restored: [] as string[], dropped: [] as string[] };
    const touched = () =>
      state.restored.length || state.dropped.length
        ? `already changed: ${[...new Set([...state.dropped.map((d) => `${d} dropped`), ...state.restored.map((r) => `${r} restored from backup ${backupId}`)])].join(', ')}`
        : 'nothing was dropped or restored yet';
    const targets = await withWritersStopped(inPlace, context, steps, progress, () => restoreAll(plan, refs, input, progress, steps, state, context), touched);
    progress.set('checks');
    for (const t of plan.targets) {
      if (t.mode === 'copy' && !input.checkCopies) continue;
      const copies = t.mode === 'copy' ? Object.fromEntries(t.artifacts.map((a) => [a.name, a.into])) : undefined;
      const passed = (await on(refs.get(t.target)!).transfer.sanityChecks({ target: t.target, ...(copies ? { copies } : {}) })).passed;
      steps.push(...passed.map((p) => `${t.target}: check ${p}`));
    }
    progress.set('done');
    return { backupId, plan, dryRun: false, targets, steps, approvedBy };
  } finally {
    await held.release();
  }
}

function ownerOf(input: RestoreInput): { owner?: string } {
  return input.owner ? { owner: input.owner } : {};
}

async function restoreAll(
  plan: RestorePlan,
  refs: Map<string, TargetRef>,
  input: RestoreInput,
  progress: Tracker,
  steps: string[],
  state: { restored: string[]; dropped: string[] },
  context: HookContext,
): Promise<TargetRestoreResult[]> {
  const pins = new Map<string, string>();
  progress.total(plan.bytes);
  for (const t of plan.targets) {
    for (const a of t.artifacts) {
      // A new name is authenticated block by block as it streams (restoreNewItem); nothing is dropped for it.
      if (a.streamed) continue;
      progress.set('verify', `${t.target}/${a.file}`);
      const v = await on(refs.get(t.target)!).transfer.verifyStoredArtifact({ target: t.target, backupId: plan.backupId, file: a.file, allowUnsigned: input.allowUnsigned });
      if (v.pin) pins.set(`${t.target}/${a.file}`, v.pin);
      progress.add(a.bytes, `${t.target}/${a.file}`);
    }
  }
  progress.total(plan.bytes);
  const results = await together(plan.targets.map((t) => () => restoreTarget(t, refs.get(t.target)!, plan.backupId, input, progress, state, pins)));
  for (const t of plan.targets) {
    if (t.mode !== 'in-place') continue;
    await runHooks(refs.get(t.target)!, 'postRestore', context, steps, progress, 'post-restore');
  }
  return results;
}

async function restoreTarget(
  t: TargetPlan,
  ref: TargetRef,
  backupId: string,
  input: RestoreInput,
  progress: Tracker,
  state: { restored: string[]; dropped: string[] },
  pins: Map<string, string>,
): Promise<TargetRestoreResult> {
  const started = Date.now();
  const { transfer, quick: near } = on(ref);
  if (input.dropFirst && t.mode === 'in-place') {
    // Each name once, before any of its artifacts is restored (a ClickHouse database comes as a schema and a stream per table).
    for (const into of new Set(t.artifacts.map((a) => a.into))) {
      progress.set('drop', `${t.target}: ${into}`);
      await near.dropItem({ target: t.target, name: into });
      state.dropped.push(`${t.target}/${into}`);
    }
  }
  for (const a of t.artifacts) {
    progress.set('restore', `${t.target}: ${a.name} -> ${a.into}`);
    // A new name (streamed) goes to an activity of its own: an older worker, which would drop and restore unverified, never takes it.
    await (a.streamed ? transfer.restoreNewItem : transfer.restoreItem)({
      target: t.target,
      backupId,
      file: a.file,
      into: a.into,
      ...(t.subPrefix !== undefined ? { subPrefix: t.subPrefix } : {}),
      ...(pins.has(`${t.target}/${a.file}`) ? { pin: pins.get(`${t.target}/${a.file}`) } : {}),
      ...ownerOf(input),
      allowUnsigned: input.allowUnsigned,
    });
    state.restored.push(`${t.target}/${a.into}`);
    progress.add(a.bytes, `${t.target}/${a.file}`);
  }
  return {
    target: t.target,
    kind: t.kind,
    restored: t.artifacts.map((a) => ({ name: a.name, into: a.into })),
    bytes: t.bytes,
    seconds: (Date.now() - started) / 1000,
  };
}
