import { randomBytes } from 'node:crypto';
import type { Config } from '../config';
import { validateBackupId, validateName, validateSubPrefix } from '../domain/names';
import type { RestoreInput, RestoreResult } from '../domain/plan';
import { LifeboatError } from '../errors';
import { openRepository } from '../repo';
import { loadManifest } from '../repo/catalog';
import { checkTargets, report } from './commands';
import type { ExitCode } from './exit';
import { bytes, seconds, type Output } from './output';
import { runWorkflow, type RunOptions } from './run';

export interface RestoreFlags extends RunOptions {
  target: string[];
  only: string[];
  as?: string;
  prefix?: string;
  owner?: string;
  yes?: boolean;
  dryRun?: boolean;
  approvalTimeout?: number;
  allowUnsigned?: boolean;
}

/** The workflow input for `lifeboat restore`, from its flags; every name checked before anything starts. */
export async function restoreInput(config: Config, backupId: string, o: RestoreFlags): Promise<RestoreInput> {
  validateBackupId(backupId);
  checkTargets(config, o.target);
  o.only.forEach((n) => validateName('--only', n));
  const input: RestoreInput = { backupId, targets: o.target.length ? o.target : undefined, yes: o.yes === true, dryRun: o.dryRun === true, allowUnsigned: o.allowUnsigned === true };
  if (o.only.length || o.as) {
    if (o.target.length !== 1) throw new LifeboatError('UsageError', '--only and --as need exactly one --target');
    const target = o.target[0]!;
    const { manifest } = await loadManifest(await openRepository(config), target, backupId, config.signing?.publicKeys ?? []);
    const names = [...new Set(manifest.artifacts.map((a) => a.name))];
    const only = o.only.length ? o.only : names;
    const missing = only.filter((n) => !names.includes(n));
    if (missing.length) throw new LifeboatError('ArtifactNotFound', `backup '${backupId}' of '${target}' has no ${missing.join(', ')}; it has ${names.join(', ')}`);
    input.only = { [target]: only };
    if (o.as) {
      if (only.length !== 1) throw new LifeboatError('UsageError', `--as renames one item; name it with --only (backup '${backupId}' of '${target}' has ${names.join(', ')})`);
      input.into = { [target]: { [only[0]!]: validateName('--as', o.as) } };
    }
  }
  if (o.prefix !== undefined) {
    if (o.target.length !== 1) throw new LifeboatError('UsageError', '--prefix needs exactly one --target (a bucket target)');
    input.subPrefix = { [o.target[0]!]: validateSubPrefix(o.prefix) };
  }
  if (o.owner !== undefined) input.owner = validateName('--owner', o.owner);
  if (o.approvalTimeout !== undefined) input.approvalTimeoutSeconds = o.approvalTimeout;
  return input;
}

export async function restore(config: Config, out: Output, backupId: string, o: RestoreFlags): Promise<ExitCode> {
  const input = await restoreInput(config, backupId, o);
  const label = o.target.length ? o.target.join('+') : 'all';
  const workflowId = `restore/${label}/${backupId}${o.dryRun ? `/dry-run-${randomBytes(2).toString('hex')}` : ''}`;
  if (!o.yes && !o.dryRun) out.say(`the restore waits for approval once it has a plan: lifeboat approve ${workflowId} (or the Web UI, or temporal workflow signal --workflow-id ${workflowId} --name approve)`);
  const r = await runWorkflow<RestoreResult>(config, out, 'restoreWorkflow', workflowId, input, { ...o, tags: { operation: 'restore', targets: o.target } });
  return report(out, r, (v) => (v.dryRun ? planLines(v) : doneLines(v)));
}

function planLines(v: RestoreResult): string[] {
  return [
    `restore plan for ${v.backupId} (dry run: nothing was changed)`,
    ...v.plan.targets.flatMap((t) => [
      t.mode === 'in-place'
        ? `  ${t.target} (${t.kind}, from server ${t.serverVersion}): stop its writers, then drop and restore${t.subPrefix ? ` only the folder ${t.subPrefix} (nothing outside it is read, written or deleted)` : ''}:`
        : `  ${t.target} (${t.kind}, from server ${t.serverVersion}): restore copies under other names; the target itself, its writers and hooks are not touched:`,
      ...(t.notice ? [`    NOTE: ${t.notice}${t.approvalRequired ? ' The approve signal is required even with --yes.' : ''}`] : []),
      ...t.artifacts.map((a) => `    ${a.name === a.into ? a.name : `${a.name} -> ${a.into}`}  from ${a.file}  ${bytes(a.bytes)}`),
      ...(t.preview ? t.preview.map((p) => `    ${p}`) : []),
    ]),
    `  ${bytes(v.plan.bytes)} in all`,
  ];
}

function doneLines(v: RestoreResult): string[] {
  return [
    `restore of ${v.backupId} ok${v.approvedBy ? ` (approved by ${v.approvedBy})` : ''}`,
    ...v.targets.map((t) => `  ${t.target} (${t.kind}): ${t.restored.map((x) => (x.name === x.into ? x.name : `${x.name} -> ${x.into}`)).join(', ')}, ${bytes(t.bytes)}, ${seconds(t.seconds)}`),
    ...v.steps.map((s) => `  ${s}`),
  ];
}
