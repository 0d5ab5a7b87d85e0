import type { Config } from '../config';
import { buildReport, formatAge, type LatestWorst, type NewestBackup, type Report } from '../domain/rpo';
import { LifeboatError, messageOf } from '../errors';
import { openRepository, type Repository } from '../repo';
import { listBackups, readDrillRecords, readManifest, type Trust } from '../repo/catalog';
import type { Output } from './output';
import { applyPitrRpo } from './pitr';

export const DEFAULT_REPORT_LAST = 10;

/**
 * The newest complete backup of each target: the newest backup id whose
 * manifest reads. A manifest that does not read is skipped with a warning
 * (the report is what an operator looks at when things are already wrong).
 * Where signing is configured, only signed backups count: a forged one must
 * not make the RPO look better than it is.
 */
async function newestBackups(repo: Repository, targets: string[], warnings: string[], trust: Trust): Promise<Map<string, NewestBackup>> {
  const listed = await listBackups(repo, targets);
  const out = new Map<string, NewestBackup>();
  for (const target of targets) {
    const ids = listed.filter((b) => b.target === target).map((b) => b.backupId).reverse();
    for (const backupId of ids) {
      try {
        const m = await readManifest(repo, target, backupId, trust);
        out.set(target, { backupId, finishedAt: m.finishedAt });
        break;
      } catch (err) {
        warnings.push(`${target}: backup ${backupId} skipped: ${messageOf(err)}`);
      }
    }
  }
  return out;
}

export async function gatherReport(config: Config, last: number, now = new Date()): Promise<{ report: Report; repository: string; warnings: string[] }> {
  const repo = await openRepository(config);
  const targets = [...config.targets.values()].map((t) => ({ name: t.name, kind: t.kind }));
  const warnings: string[] = [];
  const publicKeys = config.signing?.publicKeys ?? [];
  const newest = await newestBackups(
    repo,
    targets.map((t) => t.name),
    warnings,
    { publicKeys, allowUnsigned: publicKeys.length === 0 },
  );
  const drills = await readDrillRecords(repo, last);
  const report = buildReport({ now, targets, newest, drills, last });
  await applyPitrRpo(config, repo, report, warnings);
  return { report, repository: repo.url(''), warnings };
}

/** The human table of `lifeboat report`: aligned columns, then each failed drill's reasons. */
export function reportTable(r: Report): string[] {
  const now = new Date(r.generatedAt).getTime();
  const secs = (v: LatestWorst) => (v.latest === null ? '-' : `${v.latest.toFixed(1)} / ${v.worst!.toFixed(1)}`);
  const header = ['TARGET', 'KIND', 'LAST BACKUP', 'RPO', 'LAST DRILL', 'RESTORE s latest/worst', 'BACKUP s latest/worst'];
  const rows = r.targets.map((t) => [
    t.target,
    t.kind,
    t.lastBackup?.backupId ?? 'never',
    formatAge(t.rpoSeconds),
    t.lastDrill ? `${t.lastDrill.ok ? 'ok' : 'FAILED'} ${formatAge((now - new Date(t.lastDrill.finishedAt).getTime()) / 1000)} ago` : 'never',
    secs(t.restoreSeconds),
    secs(t.backupSeconds),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]! + 2))
      .join('')
      .trimEnd();
  const failed = r.targets.flatMap((t) =>
    t.lastDrill && !t.lastDrill.ok ? [`${t.target}: last drill ${t.lastDrill.workflowId} failed: ${t.lastDrill.failures.join('; ') || 'no reason recorded'}`] : [],
  );
  return [
    line(header),
    ...rows.map(line),
    ...(failed.length ? ['', ...failed] : []),
    '',
    `RPO: age of the newest complete backup; for targets with pitr:, age of the last WAL segment archived into the repository. RESTORE/BACKUP: seconds a drill measured, from the newest drill and the worst of the ${r.drillsConsidered} newest drill record(s) (--last ${r.last}).`,
  ];
}

export async function report(config: Config, out: Output, o: { last?: string }): Promise<0> {
  const last = o.last === undefined ? DEFAULT_REPORT_LAST : Number(o.last);
  if (!Number.isInteger(last) || last < 1) throw new LifeboatError('ConfigError', `--last must be a whole number of drills, 1 or more, not '${o.last}'`);
  const { report: r, repository, warnings } = await gatherReport(config, last);
  for (const w of warnings) out.say(`warning: ${w}`);
  out.result({ ok: true, repository, ...r, warnings }, reportTable(r));
  return 0;
}
