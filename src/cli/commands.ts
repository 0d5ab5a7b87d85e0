import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { WorkflowNotFoundError } from '@temporalio/client';
import { targetOf, taskQueueOf, type Config } from '../config';
import { checkSecrets } from '../config/load';
import { makeBackupId, validateBackupId } from '../domain/names';
import type { BackupResult, DrillMode, DrillResult, PruneResult, VerifyResult } from '../domain/plan';
import { LifeboatError } from '../errors';
import { openRepository } from '../repo';
import { listBackups, loadManifest, readVerification } from '../repo/catalog';
import { zstdCli } from '../repo/unzstd';
import { announce, createWorker, queuesToServe, serveWorkerMetrics, workerLogger } from '../worker';
import { sweepAll } from '../worker/sweep';
import { connect } from './client';
import { EXIT, exitForRun, type ExitCode } from './exit';
import { listing as pitrListing } from './pitr';
import { bytes, seconds, type Output } from './output';
import { runWorkflow, type RunOptions, type RunOutcome } from './run';

/** Prints a run's result (or its failure) and returns the exit status. */
export function report<T>(out: Output, r: RunOutcome<T>, human: (v: T) => string[], extra: (v: T | undefined) => Record<string, unknown> = () => ({})): ExitCode {
  const base = { workflowId: r.workflowId, runId: r.runId, uiUrl: r.uiUrl };
  if (r.ok) {
    out.result({ ok: true, ...base, ...extra(r.value), result: r.value }, human(r.value as T));
    return EXIT.ok;
  }
  const f = r.failure!;
  out.error(f.message, { type: f.type, ...base, ...extra(f.details[0] as T | undefined) });
  return exitForRun(f.type);
}

/** Every named target exists in the config (with a suggestion when one is a typo): checked before anything starts. */
export function checkTargets(config: Config, targets: string[]): void {
  for (const t of targets) targetOf(config, t);
}

export async function worker(config: Config, out: Output, o: { targets?: string[]; taskQueue?: string }): Promise<ExitCode> {
  checkTargets(config, o.targets ?? []);
  // The secrets it will read are there and private, before it takes any work.
  checkSecrets(config, o.targets?.length ? o.targets : [...config.targets.keys()].filter((t) => taskQueueOf(config, t) === (o.taskQueue ?? config.temporal.taskQueue)));
  const queues = queuesToServe(config, o);
  // With metrics: in the config, one endpoint for the process, before any worker exists.
  const metrics = await serveWorkerMetrics(config);
  const workers: Awaited<ReturnType<typeof createWorker>>[] = [];
  for (const q of queues) workers.push(await createWorker(config, { ...q, metrics: metrics?.metrics }));
  const swept = await sweepAll(config, o.targets?.length ? o.targets : [...config.targets.keys()]);
  // What a worker process says are log events, not output: a JSON log stays JSON on every line.
  for (const s of swept) workerLogger().warn(`cleaned up after a worker that died: ${s}`);
  let stopping = false;
  const stop = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    announce(`${sig}: shutting down; activities in flight are handed back and retried by the next worker`, { signal: sig });
    for (const w of workers) if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
    setTimeout(() => process.exit(sig === 'SIGINT' ? EXIT.interrupted : EXIT.terminated), 20_000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  announce(`lifeboat worker on task queue${queues.length > 1 ? 's' : ''} ${queues.map((q) => `'${q.taskQueue}'${q.activitiesOnly ? ' (activities)' : ''}`).join(', ')} at ${config.temporal.address}; Ctrl-C stops it`, {
    taskQueues: queues.map((q) => q.taskQueue),
    address: config.temporal.address,
    ...(metrics ? { metrics: `http://${metrics.endpoint.address}/metrics` } : {}),
    // Where a restore tool's input is decompressed (docs/postgres.md, LIFEBOAT_ZSTD).
    zstd: zstdCli() ?? 'none: restores decompress in the worker',
  });
  await Promise.all(workers.map((w) => w.worker.run()));
  for (const w of workers) await w.connection.close();
  await metrics?.endpoint.close();
  return EXIT.ok;
}

export async function backup(config: Config, out: Output, targets: string[], opts: RunOptions): Promise<ExitCode> {
  checkTargets(config, targets);
  const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
  const label = targets.length ? targets.join('+') : 'all';
  const r = await runWorkflow<BackupResult>(config, out, 'backupWorkflow', `backup/${label}/${backupId}`, { targets, backupId }, { ...opts, tags: { operation: 'backup', targets } });
  return report(out, r, (v) => [
    `backup ${v.backupId} ok`,
    ...v.targets.map((t) => `  ${t.target} (${t.kind}): ${t.artifacts} artifact(s), ${bytes(t.bytes)}, ${seconds(t.seconds)}`),
  ]);
}

export async function approve(config: Config, out: Output, workflowId: string): Promise<ExitCode> {
  const t = await connect(config);
  try {
    const by = `${userInfo().username}@${hostname()}`;
    await t.client.workflow.getHandle(workflowId).signal('approve', { by });
    out.result({ ok: true, workflowId, by }, [`approved ${workflowId} (as ${by})`]);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new LifeboatError('WorkflowNotFound', `no running workflow ${workflowId}; it finished, or the id is wrong (temporal workflow list)`);
    throw err;
  } finally {
    await t.close();
  }
}

/** Asks a run to stop: a restore starts the writers again, a drill drops its scratch copy, a backup leaves no half-written artifact. */
export async function cancel(config: Config, out: Output, workflowId: string): Promise<ExitCode> {
  const t = await connect(config);
  try {
    await t.client.workflow.getHandle(workflowId).cancel();
    out.result({ ok: true, workflowId }, [`asked ${workflowId} to cancel; it cleans up (writers started again, scratch copies dropped) before it ends`]);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new LifeboatError('WorkflowNotFound', `no running workflow ${workflowId}; it finished, or the id is wrong (temporal workflow list)`);
    throw err;
  } finally {
    await t.close();
  }
}

export async function drill(config: Config, out: Output, o: { target: string[]; mode: string } & RunOptions): Promise<ExitCode> {
  if (o.mode !== 'scratch' && o.mode !== 'in-place') throw new LifeboatError('UsageError', `--mode must be 'scratch' or 'in-place', not '${o.mode}'`);
  checkTargets(config, o.target);
  const id = `drill/${makeBackupId(new Date(), randomBytes(2).toString('hex'))}`;
  const r = await runWorkflow<DrillResult>(config, out, 'drillWorkflow', id, { targets: o.target.length ? o.target : undefined, mode: o.mode as DrillMode }, { ...o, tags: { operation: 'drill', targets: o.target } });
  const summary = (v: DrillResult | undefined) => (v?.stores ? { stores: v.stores, backupId: v.backupId, mode: v.mode, nonce: v.nonce } : {});
  return report(
    out,
    r,
    (v) => [
      ...v.stores.map(
        (s) => `drill ok: ${s.target} (${s.kind}${s.mode && s.mode !== v.mode ? `, ${s.mode}: an in-place drill would replace the whole server` : ''}): backup ${seconds(s.backupSeconds)}, restore ${seconds(s.restoreSeconds)}, ${s.markers.found}/${s.markers.expected} markers, ${bytes(s.artifactBytes)}`,
      ),
      ...(r.uiUrl ? [`  run: ${r.uiUrl}`] : []),
    ],
    summary,
  );
}

/**
 * Complete backups (those with a manifest), each with what its signature and
 * last verification say. A manifest that does not read is listed as damaged:
 * the rest are still shown and the exit status stays 0.
 */
export async function ls(config: Config, out: Output, targets: string[]): Promise<ExitCode> {
  checkTargets(config, targets);
  const names = targets.length ? targets : [...config.targets.keys()];
  const repo = await openRepository(config);
  const keys = config.signing?.publicKeys ?? [];
  type Row =
    | { backupId: string; target: string; damaged: string }
    | {
        backupId: string;
        target: string;
        kind: string;
        finishedAt: string;
        bytes: number;
        artifacts: number;
        encryption: string;
        serverVersion: string;
        signature: { state: string; why?: string; key?: string };
        verification: { ok: boolean; at: string } | null;
      };
  const rows: Row[] = [];
  for (const b of await listBackups(repo, names)) {
    try {
      const { manifest: m, signature } = await loadManifest(repo, b.target, b.backupId, keys);
      const v = await readVerification(repo, b.target, b.backupId).catch(() => undefined);
      rows.push({
        backupId: b.backupId,
        target: b.target,
        kind: m.kind,
        finishedAt: m.finishedAt,
        bytes: m.artifacts.reduce((s, a) => s + a.bytes, 0),
        artifacts: m.artifacts.length,
        encryption: m.encryption.format,
        serverVersion: m.server.version,
        signature,
        verification: v ? { ok: v.ok, at: v.verifiedAt } : null,
      });
    } catch (err) {
      rows.push({ backupId: b.backupId, target: b.target, damaged: (err as Error).message });
    }
  }
  const state = (r: Row) => {
    if ('damaged' in r) return 'DAMAGED';
    if (r.signature.state === 'bad') return 'FORGED?';
    const v = r.verification ? (r.verification.ok ? 'verified' : 'verify FAILED') : 'not verified';
    return `${r.signature.state}, ${v}`;
  };
  const pitr = await pitrListing(config, repo, names);
  out.result(
    { ok: true, backups: rows, pitr: pitr.rows },
    rows.length || pitr.rows.length
      ? [
          'BACKUP                  TARGET        KIND        SIZE        FINISHED                  STATE',
          ...rows.map((r) =>
            'damaged' in r
              ? `${r.backupId.padEnd(24)}${r.target.padEnd(14)}${'?'.padEnd(12)}${'?'.padEnd(12)}${'?'.padEnd(26)}DAMAGED: ${r.damaged}`
              : `${r.backupId.padEnd(24)}${r.target.padEnd(14)}${r.kind.padEnd(12)}${bytes(r.bytes).padEnd(12)}${r.finishedAt.padEnd(26)}${state(r)}`,
          ),
        ]
      : [`no backups of ${names.join(', ')} in ${repo.url('')}`],
  );
  for (const l of out.json ? [] : pitr.lines) process.stdout.write(`${l}\n`);
  return EXIT.ok;
}

export async function verify(config: Config, out: Output, backupId: string, o: { target: string[]; allowUnsigned?: boolean } & RunOptions): Promise<ExitCode> {
  validateBackupId(backupId);
  checkTargets(config, o.target);
  const label = o.target.length ? o.target.join('+') : 'all';
  const input = { backupId, targets: o.target.length ? o.target : undefined, allowUnsigned: o.allowUnsigned === true };
  const r = await runWorkflow<VerifyResult>(config, out, 'verifyWorkflow', `verify/${label}/${backupId}/${randomBytes(2).toString('hex')}`, input, { ...o, tags: { operation: 'verify', targets: o.target } });
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
  return status === EXIT.ok && r.value?.ok === false ? EXIT.failed : status;
}

export async function prune(config: Config, out: Output, targets: string[], o: { dryRun?: boolean; allowUnsigned?: boolean } & RunOptions): Promise<ExitCode> {
  checkTargets(config, targets);
  const label = targets.length ? targets.join('+') : 'all';
  const id = `prune/${label}/${makeBackupId(new Date(), randomBytes(2).toString('hex'))}`;
  const input = { targets: targets.length ? targets : undefined, dryRun: o.dryRun === true, allowUnsigned: o.allowUnsigned === true };
  const r = await runWorkflow<PruneResult>(config, out, 'pruneWorkflow', id, input, { ...o, tags: { operation: 'prune', targets } });
  return report(out, r, (v) =>
    v.targets.flatMap((t) => [
      `${t.target}: keep ${t.kept.length}, ${v.dryRun ? 'would delete' : 'deleted'} ${t.deleted.length}${t.locked.length ? `, ${t.locked.length} still locked` : ''}${t.damaged.length ? `, ${t.damaged.length} damaged (left alone)` : ''}`,
      ...t.kept.map((k) => `  keep    ${k.backupId}  ${k.reasons.join(', ')}`),
      ...t.deleted.map((d) => `  ${v.dryRun ? 'would delete' : 'deleted'} ${d}${t.incomplete.includes(d) ? '  (interrupted backup, no manifest)' : ''}`),
      ...t.locked.map((l) => `  locked  ${l.backupId}  Object Lock retention until ${l.until}; skipped`),
      ...t.damaged.map((d) => `  DAMAGED ${d.backupId}  ${d.why}; not counted, not deleted: look at it, then delete it by hand`),
    ]),
  );
}
