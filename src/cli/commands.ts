import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import type { Config } from '../config';
import { makeBackupId, validateBackupId, validateName, validateSubPrefix } from '../domain/names';
import type { BackupResult, DrillMode, DrillResult, PruneResult, RestoreInput, RestoreResult, VerifyResult } from '../domain/plan';
import { LifeboatError } from '../errors';
import { openRepository } from '../repo';
import { listBackups, readManifest, readVerification } from '../repo/catalog';
import { createWorker } from '../worker';
import { connect } from './client';
import { listing as pitrListing } from './pitr';
import { bytes, seconds, type Output } from './output';
import { runWorkflow, type RunOptions, type RunOutcome } from './run';

/** Exit status of a command: 0 ok, 1 the operation failed. */
type Status = 0 | 1;

function report<T>(out: Output, r: RunOutcome<T>, human: (v: T) => string[], extra: (v: T | undefined) => Record<string, unknown> = () => ({})): Status {
  const base = { workflowId: r.workflowId, runId: r.runId, uiUrl: r.uiUrl };
  if (r.ok) {
    out.result({ ok: true, ...base, ...extra(r.value), result: r.value }, human(r.value as T));
    return 0;
  }
  const f = r.failure!;
  out.error(f.message, { type: f.type, ...base, ...extra(f.details[0] as T | undefined) });
  return 1;
}

export async function worker(config: Config, out: Output): Promise<Status> {
  const { worker: w, connection } = await createWorker(config);
  out.say(`lifeboat worker on task queue '${config.temporal.taskQueue}' at ${config.temporal.address}; Ctrl-C stops it`);
  await w.run();
  await connection.close();
  return 0;
}

export async function backup(config: Config, out: Output, targets: string[], opts: RunOptions): Promise<Status> {
  targets.forEach((t) => validateName('target', t));
  const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
  const label = targets.length ? targets.join('+') : 'all';
  const r = await runWorkflow<BackupResult>(config, out, 'backupWorkflow', `backup/${label}/${backupId}`, { targets, backupId }, { ...opts, tags: { operation: 'backup', targets } });
  return report(out, r, (v) => [
    `backup ${v.backupId} ok`,
    ...v.targets.map((t) => `  ${t.target} (${t.kind}): ${t.artifacts} artifact(s), ${bytes(t.bytes)}, ${seconds(t.seconds)}`),
  ]);
}

export async function restore(
  config: Config,
  out: Output,
  backupId: string,
  o: { target: string[]; only: string[]; as?: string; prefix?: string; yes?: boolean; dryRun?: boolean; approvalTimeout?: string } & RunOptions,
): Promise<Status> {
  validateBackupId(backupId);
  o.target.forEach((t) => validateName('target', t));
  o.only.forEach((n) => validateName('--only', n));
  const input: RestoreInput = { backupId, targets: o.target.length ? o.target : undefined, yes: o.yes === true, dryRun: o.dryRun === true };
  if (o.only.length || o.as) {
    if (o.target.length !== 1) throw new LifeboatError('ConfigError', '--only and --as need exactly one --target');
    const target = o.target[0]!;
    const names = [...new Set((await readManifest(await openRepository(config), target, backupId)).artifacts.map((a) => a.name))];
    const only = o.only.length ? o.only : names;
    const missing = only.filter((n) => !names.includes(n));
    if (missing.length) throw new LifeboatError('ConfigError', `backup '${backupId}' of '${target}' has no ${missing.join(', ')}; it has ${names.join(', ')}`);
    input.only = { [target]: only };
    if (o.as) {
      if (only.length !== 1) throw new LifeboatError('ConfigError', `--as renames one item; name it with --only (backup '${backupId}' of '${target}' has ${names.join(', ')})`);
      input.into = { [target]: { [only[0]!]: validateName('--as', o.as) } };
    }
  }
  if (o.prefix !== undefined) {
    if (o.target.length !== 1) throw new LifeboatError('ConfigError', '--prefix needs exactly one --target (a bucket target)');
    input.subPrefix = { [o.target[0]!]: validateSubPrefix(o.prefix) };
  }
  if (o.approvalTimeout) input.approvalTimeoutSeconds = Number.parseInt(o.approvalTimeout, 10);
  const label = o.target.length ? o.target.join('+') : 'all';
  const workflowId = `restore/${label}/${backupId}${o.dryRun ? `/dry-run-${randomBytes(2).toString('hex')}` : ''}`;
  if (!o.yes && !o.dryRun) out.say(`the restore waits for approval: lifeboat approve ${workflowId} (or the Web UI, or temporal workflow signal --workflow-id ${workflowId} --name approve)`);
  const r = await runWorkflow<RestoreResult>(config, out, 'restoreWorkflow', workflowId, input, { ...o, tags: { operation: 'restore', targets: o.target } });
  return report(out, r, (v) =>
    v.dryRun
      ? [
          `restore plan for ${v.backupId} (dry run: nothing was changed)`,
          ...v.plan.targets.flatMap((t) => [
            `  ${t.target} (${t.kind}, from server ${t.serverVersion}): stop its writers, then drop and restore${t.subPrefix ? ` only what is under ${t.subPrefix}` : ''}:`,
            ...t.artifacts.map((a) => `    ${a.name === a.into ? a.name : `${a.name} -> ${a.into}`}  from ${a.file}  ${bytes(a.bytes)}`),
          ]),
          `  ${bytes(v.plan.bytes)} in all`,
        ]
      : [
          `restore of ${v.backupId} ok`,
          ...v.targets.map((t) => `  ${t.target} (${t.kind}): ${t.restored.map((x) => (x.name === x.into ? x.name : `${x.name} -> ${x.into}`)).join(', ')}, ${bytes(t.bytes)}, ${seconds(t.seconds)}`),
          ...v.steps.map((s) => `  ${s}`),
        ],
  );
}

export async function approve(config: Config, out: Output, workflowId: string): Promise<Status> {
  const t = await connect(config);
  try {
    await t.client.workflow.getHandle(workflowId).signal('approve', { by: userInfo().username });
    out.result({ ok: true, workflowId }, [`approved ${workflowId}`]);
    return 0;
  } finally {
    await t.close();
  }
}

export async function drill(config: Config, out: Output, o: { target: string[]; mode: string } & RunOptions): Promise<Status> {
  if (o.mode !== 'scratch' && o.mode !== 'in-place') throw new LifeboatError('ConfigError', `--mode must be 'scratch' or 'in-place', not '${o.mode}'`);
  o.target.forEach((t) => validateName('target', t));
  const id = `drill/${makeBackupId(new Date(), randomBytes(2).toString('hex'))}`;
  const r = await runWorkflow<DrillResult>(config, out, 'drillWorkflow', id, { targets: o.target.length ? o.target : undefined, mode: o.mode as DrillMode }, { ...o, tags: { operation: 'drill', targets: o.target } });
  const summary = (v: DrillResult | undefined) => (v?.stores ? { stores: v.stores, backupId: v.backupId, mode: v.mode } : {});
  return report(
    out,
    r,
    (v) => [
      ...v.stores.map(
        (s) => `drill ok: ${s.target} (${s.kind}): backup ${seconds(s.backupSeconds)}, restore ${seconds(s.restoreSeconds)}, ${s.markers.found}/${s.markers.expected} markers, ${bytes(s.artifactBytes)}`,
      ),
      ...(r.uiUrl ? [`  run: ${r.uiUrl}`] : []),
    ],
    summary,
  );
}

export async function ls(config: Config, out: Output, targets: string[]): Promise<Status> {
  const names = targets.length ? targets : [...config.targets.keys()];
  const repo = await openRepository(config);
  const rows = [];
  for (const b of await listBackups(repo, names)) {
    const m = await readManifest(repo, b.target, b.backupId);
    const v = await readVerification(repo, b.target, b.backupId);
    rows.push({
      backupId: b.backupId,
      target: b.target,
      kind: m.kind,
      finishedAt: m.finishedAt,
      bytes: m.artifacts.reduce((s, a) => s + a.bytes, 0),
      artifacts: m.artifacts.length,
      encryption: m.encryption.format,
      serverVersion: m.server.version,
      verification: v ? { ok: v.ok, at: v.verifiedAt } : null,
    });
  }
  const pitr = await pitrListing(config, repo, names);
  out.result(
    { ok: true, backups: rows, pitr: pitr.rows },
    rows.length || pitr.rows.length
      ? [
          'BACKUP                  TARGET        KIND        SIZE        FINISHED                  VERIFIED',
          ...rows.map(
            (r) =>
              `${r.backupId.padEnd(24)}${r.target.padEnd(14)}${r.kind.padEnd(12)}${bytes(r.bytes).padEnd(12)}${r.finishedAt.padEnd(26)}${r.verification ? `${r.verification.ok ? 'verified' : 'FAILED'} ${r.verification.at}` : '-'}`,
          ),
        ]
      : [`no backups of ${names.join(', ')} in ${repo.url('')}`],
  );
  for (const l of out.json ? [] : pitr.lines) process.stdout.write(`${l}\n`);
  return 0;
}

export async function verify(config: Config, out: Output, backupId: string, o: { target: string[] } & RunOptions): Promise<Status> {
  validateBackupId(backupId);
  o.target.forEach((t) => validateName('target', t));
  const label = o.target.length ? o.target.join('+') : 'all';
  const r = await runWorkflow<VerifyResult>(config, out, 'verifyWorkflow', `verify/${label}/${backupId}/${randomBytes(2).toString('hex')}`, { backupId, targets: o.target.length ? o.target : undefined }, { ...o, tags: { operation: 'verify', targets: o.target } });
  const status = report(
    out,
    r,
    (v) =>
      v.targets.flatMap((t) => [
        `${t.ok ? 'verified' : 'FAILED'}: ${t.target} (${t.kind}) backup ${v.backupId}`,
        ...t.artifacts.map((a) => `  ${a.ok ? 'ok    ' : 'FAILED'} ${a.file} ${bytes(a.bytes)}${a.detail ? `: ${a.detail}` : ''}${a.error ? `: ${a.error.message}` : ''}`),
      ]),
    (v) => ({ ok: v?.ok === true }),
  );
  return status === 0 && r.value?.ok === false ? 1 : status;
}

export async function prune(config: Config, out: Output, targets: string[], o: { dryRun?: boolean } & RunOptions): Promise<Status> {
  targets.forEach((t) => validateName('target', t));
  const label = targets.length ? targets.join('+') : 'all';
  const id = `prune/${label}/${makeBackupId(new Date(), randomBytes(2).toString('hex'))}`;
  const r = await runWorkflow<PruneResult>(config, out, 'pruneWorkflow', id, { targets: targets.length ? targets : undefined, dryRun: o.dryRun === true }, { ...o, tags: { operation: 'prune', targets } });
  return report(out, r, (v) =>
    v.targets.flatMap((t) => [
      `${t.target}: keep ${t.kept.length}, ${v.dryRun ? 'would delete' : 'deleted'} ${t.deleted.length}${t.locked.length ? `, ${t.locked.length} still locked` : ''}`,
      ...t.kept.map((k) => `  keep    ${k.backupId}  ${k.reasons.join(', ')}`),
      ...t.deleted.map((d) => `  ${v.dryRun ? 'would delete' : 'deleted'} ${d}${t.incomplete.includes(d) ? '  (interrupted backup, no manifest)' : ''}`),
      ...t.locked.map((l) => `  locked  ${l.backupId}  Object Lock retention until ${l.until}; skipped`),
    ]),
  );
}
