import { randomBytes } from 'node:crypto';
import type { Config } from '../config';
import { makeBackupId, validateName } from '../domain/names';
import { PITR_BACKUP_TYPES, parseTargetTime, type PitrBackupResult, type PitrBackupType, type PitrCatalog, type PitrDrillResult, type PitrRestoreResult } from '../domain/pitr';
import { LifeboatError, messageOf } from '../errors';
import type { Repository } from '../repo';
import { PitrEngine } from '../stores/postgres/pitr';
import { readPitrCatalog } from '../stores/postgres/pitr/catalog';
import { pitrSpec, pitrTargets } from '../stores/postgres/pitr/rpo';
import { EXIT, exitForRun, type ExitCode } from './exit';
import { bytes, seconds, type Output } from './output';
import { runWorkflow, type RunOptions, type RunOutcome } from './run';

/** The CLI verbs of point-in-time recovery (docs/pitr.md). */

type Status = ExitCode;

function finish<T>(out: Output, r: RunOutcome<T>, human: (v: T) => string[]): Status {
  const base = { workflowId: r.workflowId, runId: r.runId, uiUrl: r.uiUrl };
  if (r.ok) {
    out.result({ ok: true, ...base, result: r.value }, human(r.value as T));
    return EXIT.ok;
  }
  out.error(r.failure!.message, { type: r.failure!.type, ...base, ...(r.failure!.details[0] ? { result: r.failure!.details[0] } : {}) });
  return exitForRun(r.failure!.type);
}

const stamp = () => makeBackupId(new Date(), randomBytes(2).toString('hex'));

export async function backup(config: Config, out: Output, targets: string[], type: string, opts: RunOptions): Promise<Status> {
  if (!PITR_BACKUP_TYPES.includes(type as PitrBackupType)) throw new LifeboatError('ConfigError', `--pitr must be full, diff or incr, not '${type}'`);
  const names = targets.length ? targets.map((t) => validateName('target', t)) : pitrTargets(config);
  if (names.length === 0) throw new LifeboatError('ConfigError', `no target in ${config.file} has a 'pitr:' section (docs/pitr.md)`);
  names.forEach((t) => pitrSpec(config, t));
  let status: Status = EXIT.ok;
  for (const target of names) {
    const r = await runWorkflow<PitrBackupResult>(config, out, 'pitrBackupWorkflow', `pitr-backup/${target}/${stamp()}`, { target, type }, { ...opts, tags: { operation: 'backup', targets: [target] } });
    const s = finish(out, r, (v) => [
      `pgBackRest ${v.type} backup ${v.label} of ${v.target} ok: ${bytes(v.databaseBytes)} database, ${bytes(v.repositoryBytes)} stored, ${seconds(v.seconds)} (on task queue ${v.ranOn})`,
      ...(v.expired.length ? [`  expired: ${v.expired.join(', ')}`] : []),
      v.window ? `  recoverable window: ${v.window.earliest} .. ${v.window.latest}` : '  no recoverable window yet',
    ]);
    if (s !== EXIT.ok) status = s;
  }
  return status;
}

export async function restore(config: Config, out: Output, target: string, o: { toTime?: string; toLatest?: boolean; yes?: boolean; dryRun?: boolean; approvalTimeout?: number } & RunOptions): Promise<Status> {
  validateName('target', target);
  pitrSpec(config, target);
  if (!!o.toTime === !!o.toLatest) throw new LifeboatError('ConfigError', 'give either --to-time TIME or --to-latest');
  if (o.toTime) {
    try {
      parseTargetTime(o.toTime);
    } catch (err) {
      throw new LifeboatError('ConfigError', `--to-time: ${messageOf(err)}`);
    }
  }
  const input = { target, ...(o.toTime ? { toTime: o.toTime } : { latest: true }), yes: o.yes === true, dryRun: o.dryRun === true, ...(o.approvalTimeout ? { approvalTimeoutSeconds: o.approvalTimeout } : {}) };
  const workflowId = `pitr-restore/${target}/${stamp()}${o.dryRun ? '-dry-run' : ''}`;
  if (!o.yes && !o.dryRun) out.say(`the restore waits for approval: lifeboat approve ${workflowId} (or the Web UI, or temporal workflow signal --workflow-id ${workflowId} --name approve)`);
  const r = await runWorkflow<PitrRestoreResult>(config, out, 'pitrRestoreWorkflow', workflowId, input, { ...o, tags: { operation: 'restore', targets: [target] } });
  return finish(out, r, (v) => [
    v.dryRun ? `restore plan for ${target} (dry run: nothing was changed)` : `restore of ${target} ok in ${seconds(v.seconds)}`,
    `  to ${v.plan.mode === 'time' ? v.plan.targetTime : 'the end of the archive'} from backup ${v.plan.backup}; window ${v.plan.window.earliest} .. ${v.plan.window.latest}`,
    ...(v.dryRun ? v.plan.steps.map((s, i) => `  ${i + 1}. ${s}`) : [`  last replayed transaction: ${v.lastReplayed ?? 'none'}`, ...v.steps.map((s) => `  ${s}`)]),
  ]);
}

export async function drill(config: Config, out: Output, targets: string[], opts: RunOptions): Promise<Status> {
  const names = pitrTargets(config, targets);
  if (names.length === 0) {
    if (!targets.length) throw new LifeboatError('ConfigError', `no target in ${config.file} has a 'pitr:' section (docs/pitr.md)`);
    out.result({ ok: true, skipped: targets }, [`no PITR drill: ${targets.join(', ')} ${targets.length > 1 ? 'have' : 'has'} no 'pitr:' section`]);
    return EXIT.ok;
  }
  let status: Status = EXIT.ok;
  for (const target of names) {
    const r = await runWorkflow<PitrDrillResult>(config, out, 'pitrDrillWorkflow', `pitr-drill/${target}/${stamp()}`, { target }, { ...opts, tags: { operation: 'drill', targets: [target] } });
    const s = finish(out, r, (v) => [
      `PITR drill ok: ${v.target}: restored to ${v.targetTime} from ${v.backup} in ${seconds(v.restoreSeconds)}; ${v.markersBefore.found}/${v.markersBefore.expected} markers before, ${v.markersAfter.found} after; precision ${v.precisionSeconds ?? '-'}s`,
      ...(r.uiUrl ? [`  run: ${r.uiUrl}`] : []),
    ]);
    if (s !== EXIT.ok) status = s;
  }
  return status;
}

/** `lifeboat pitr setup <target>`: writes pgbackrest.conf, creates the stanza, checks archiving. On the database's host. */
export async function setup(config: Config, out: Output, target: string, o: { check: boolean }): Promise<Status> {
  const engine = new PitrEngine(pitrSpec(config, validateName('target', target)));
  const ctx = { signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: (m: string) => out.say(`warning: ${m}`) } };
  const r = await engine.setup(ctx, o);
  out.result({ ok: true, target, ...r }, [`pgBackRest stanza '${target}' ready${o.check ? ' (archiving checked)' : ''}`, `  config:          ${r.config}`, `  repository:      ${r.repository}`, `  archive_command: '${r.archiveCommand}'`]);
  return EXIT.ok;
}

// ---------------------------------------------------------------- ls and report

export interface PitrListing {
  target: string;
  repository: string;
  refreshedAt: string;
  window: PitrCatalog['window'];
  backups: PitrCatalog['backups'];
}

/** The PITR backups and windows of `names`, from lifeboat's catalog (no pgBackRest needed). */
export async function listing(config: Config, repo: Repository, names: string[]): Promise<{ rows: PitrListing[]; lines: string[] }> {
  const rows: PitrListing[] = [];
  for (const target of pitrTargets(config, names)) {
    const c = await readPitrCatalog(repo, target);
    if (c) rows.push({ target, repository: c.repository, refreshedAt: c.refreshedAt, window: c.window, backups: c.backups });
  }
  const lines = rows.flatMap((r) => [
    '',
    `PITR ${r.target} (pgBackRest, ${r.repository}): recoverable ${r.window ? `${r.window.earliest} .. ${r.window.latest}` : 'never (no backup)'}  [as of ${r.refreshedAt}]`,
    'LABEL                               TYPE  DATABASE    STORED      STOPPED',
    ...r.backups.map((b) => `${b.label.padEnd(36)}${b.type.padEnd(6)}${bytes(b.databaseBytes).padEnd(12)}${bytes(b.repositoryBytes).padEnd(12)}${b.stoppedAt}`),
  ]);
  return { rows, lines };
}

