import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Config } from '../config';
import { parseDuration } from '../config/fields';
import { formatAge, type LatestWorst, type Report } from '../domain/rpo';
import { LifeboatError } from '../errors';
import { openRepository, type Repository } from '../repo';
import { readDrillRecords } from '../repo/catalog';
import { backupHistory, gatherFacts, reportTrust, type GatheredReport } from '../repo/report-facts';
import { EXIT, type ExitCode } from './exit';
import type { Output } from './output';
import { applyPitrRpo } from '../stores/postgres/pitr/rpo';
import { renderHtmlReport } from './report-html';

export const DEFAULT_REPORT_LAST = 10;

/** What `lifeboat report` shows: the repository's facts, and for `pitr:` targets the RPO of the WAL archive. */
export async function gatherReport(config: Config, last: number, now = new Date(), repo?: Repository): Promise<GatheredReport> {
  const r = repo ?? (await openRepository(config));
  const g = await gatherFacts(config, last, now, r);
  await applyPitrRpo(config, r, g.report, g.warnings);
  return g;
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

export async function report(config: Config, out: Output, o: { last?: string; maxRpo?: string; html?: string }): Promise<ExitCode> {
  const last = o.last === undefined ? DEFAULT_REPORT_LAST : Number(o.last);
  if (!Number.isInteger(last) || last < 1) throw new LifeboatError('ConfigError', `--last must be a whole number of drills, 1 or more, not '${o.last}'`);
  const maxRpo = o.maxRpo === undefined ? undefined : parseDuration(o.maxRpo);
  if (maxRpo === 0 || (o.maxRpo !== undefined && maxRpo === undefined)) {
    throw new LifeboatError('ConfigError', `--max-rpo must be a duration like 90m, 26h or 7d, not '${o.maxRpo}'`);
  }
  const repo = await openRepository(config);
  const { report: r, repository, warnings } = await gatherReport(config, last, new Date(), repo);
  for (const w of warnings) out.say(`warning: ${w}`);
  let html: string | undefined;
  if (o.html) {
    html = resolve(o.html);
    const history = [...warnings];
    const backups = await backupHistory(repo, [...config.targets.keys()], history, reportTrust(config));
    const drills = await readDrillRecords(repo, Number.MAX_SAFE_INTEGER);
    await writeFile(html, renderHtmlReport({ report: r, repository, backups, drills, warnings: history, maxRpoSeconds: maxRpo }));
    out.say(`wrote ${html}`);
  }
  const over = maxRpo === undefined ? [] : r.targets.filter((t) => t.rpoSeconds === null || t.rpoSeconds > maxRpo);
  const budget = maxRpo === undefined ? {} : { maxRpoSeconds: maxRpo, overBudget: over.map((t) => ({ target: t.target, rpoSeconds: t.rpoSeconds })) };
  const verdict = over.length
    ? [`RPO over budget (${o.maxRpo}): ${over.map((t) => `${t.target} ${t.rpoSeconds === null ? 'never backed up' : `${formatAge(t.rpoSeconds)} old`}`).join(', ')}`]
    : maxRpo !== undefined
      ? [`every target within the RPO budget (${o.maxRpo})`]
      : [];
  out.result({ ok: over.length === 0, repository, ...r, ...budget, ...(html ? { html } : {}), warnings }, [...reportTable(r), ...(verdict.length ? ['', ...verdict] : [])]);
  return over.length ? EXIT.rpoExceeded : EXIT.ok;
}
