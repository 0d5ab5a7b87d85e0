import type { DrillRecord } from '../domain/plan';
import { formatAge, type Report } from '../domain/rpo';
import type { BackupPoint } from '../repo/report-facts';
import { escapeHtml, plotSvg, type PlotSeries } from './svg-plot';

/**
 * `lifeboat report --html FILE`: one self-contained page (inline CSS and SVG,
 * no script, nothing fetched), to attach to a ticket or open on a laptop with
 * no network: the per-target table of `lifeboat report`, and plots of backup
 * seconds, drill restore seconds and RPO over everything the repository recorded.
 */
export interface HtmlReportInput {
  report: Report;
  repository: string;
  backups: BackupPoint[];
  drills: DrillRecord[];
  warnings: string[];
  /** --max-rpo, in seconds. */
  maxRpoSeconds?: number;
}

const CSS = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.meta { color: #666; margin-bottom: 16px; }
table { border-collapse: collapse; } th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b00020; font-weight: 600; } .ok { color: #1b7f3b; }
.plot { display: block; margin: 8px 0 16px; max-width: 100%; height: auto; }
.plot text { font-size: 11px; fill: #444; } .plot .plot-title { font-size: 13px; font-weight: 600; fill: #222; }
.plot .grid { stroke: #eee; } .plot .axis { stroke: #888; } .plot .budget { stroke: #b00020; stroke-dasharray: 6 4; stroke-width: 1.5; }
ul.warnings { color: #8a5a00; }
`;

const secs = (v: number | null) => (v === null ? '-' : v.toFixed(1));

/** The RPO over time of one target: it falls to 0 as each backup finishes and grows until the next; the last tooth ends now. */
function rpoSeries(target: string, finished: number[], now: number): PlotSeries {
  const points: PlotSeries['points'] = [];
  finished.forEach((f, i) => {
    if (i > 0) points.push({ t: f, y: (f - finished[i - 1]!) / 1000, label: `just before the backup of ${new Date(f).toISOString()}` });
    points.push({ t: f, y: 0 });
  });
  if (finished.length) points.push({ t: now, y: (now - finished[finished.length - 1]!) / 1000, label: `now (${new Date(now).toISOString()})` });
  return { name: target, points };
}

export function renderHtmlReport(i: HtmlReportInput): string {
  const r = i.report;
  const now = Date.parse(r.generatedAt);
  const targets = r.targets.map((t) => t.target);
  const over = (t: Report['targets'][number]) => i.maxRpoSeconds !== undefined && (t.rpoSeconds === null || t.rpoSeconds > i.maxRpoSeconds);
  const rows = r.targets
    .map((t) => {
      const drill = t.lastDrill
        ? `<span class="${t.lastDrill.ok ? 'ok' : 'bad'}">${t.lastDrill.ok ? 'ok' : 'FAILED'}</span> ${escapeHtml(formatAge((now - Date.parse(t.lastDrill.finishedAt)) / 1000))} ago`
        : 'never';
      return `<tr data-target="${escapeHtml(t.target)}"><td>${escapeHtml(t.target)}</td><td>${escapeHtml(t.kind)}</td><td>${escapeHtml(t.lastBackup?.backupId ?? 'never')}</td>
<td class="num${over(t) ? ' bad' : ''}">${escapeHtml(formatAge(t.rpoSeconds))}</td><td>${drill}</td>
<td class="num">${secs(t.restoreSeconds.latest)} / ${secs(t.restoreSeconds.worst)}</td><td class="num">${secs(t.backupSeconds.latest)} / ${secs(t.backupSeconds.worst)}</td></tr>`;
    })
    .join('\n');
  const failures = r.targets.flatMap((t) => (t.lastDrill && !t.lastDrill.ok ? [`${t.target}: drill ${t.lastDrill.workflowId} failed: ${t.lastDrill.failures.join('; ') || 'no reason recorded'}`] : []));

  const backupSeries: PlotSeries[] = targets.map((name) => ({
    name,
    points: i.backups.filter((b) => b.target === name).map((b) => ({ t: Date.parse(b.finishedAt), y: b.seconds, label: `backup ${b.backupId}` })),
  }));
  const drillPoints = (pick: (s: DrillRecord['stores'][number]) => number) =>
    targets.map((name) => ({
      name,
      points: i.drills.flatMap((d) => d.stores.filter((s) => s.target === name).map((s) => ({ t: Date.parse(d.finishedAt), y: pick(s), label: `drill ${d.workflowId}${d.ok ? '' : ' (failed)'}` }))),
    }));
  const rpo = targets.map((name) => rpoSeries(name, i.backups.filter((b) => b.target === name).map((b) => Date.parse(b.finishedAt)).sort((a, b) => a - b), now));
  const budget = i.maxRpoSeconds !== undefined ? { y: i.maxRpoSeconds, label: `--max-rpo ${formatAge(i.maxRpoSeconds)}` } : undefined;
  const ageAxis = (y: number) => formatAge(y);

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lifeboat RPO/RTO report ${escapeHtml(r.generatedAt)}</title>
<style>${CSS}</style></head>
<body>
<h1>lifeboat RPO/RTO report</h1>
<div class="meta">${escapeHtml(r.generatedAt)} · repository ${escapeHtml(i.repository)} · ${i.backups.length} backup(s), ${i.drills.length} drill record(s)${i.maxRpoSeconds !== undefined ? ` · RPO budget ${escapeHtml(formatAge(i.maxRpoSeconds))}` : ''}</div>
<table id="targets"><thead><tr><th>target</th><th>kind</th><th>last backup</th><th>RPO</th><th>last drill</th><th>restore s latest / worst</th><th>backup s latest / worst</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p class="meta">RPO: age of the newest complete backup. Restore and backup seconds: measured by drills, the newest and the worst of the ${r.drillsConsidered} newest drill record(s) (--last ${r.last}).</p>
${failures.length ? `<ul class="bad">${failures.map((f) => `<li>${escapeHtml(f)}</li>`).join('')}</ul>` : ''}
${i.warnings.length ? `<h2>Warnings</h2><ul class="warnings">${i.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>` : ''}
<h2>Backup seconds</h2>
${plotSvg({ id: 'plot-backup', title: 'Backup duration per backup (manifest start to finish)', yLabel: 'seconds', series: backupSeries })}
<h2>Restore seconds</h2>
${plotSvg({ id: 'plot-restore', title: 'Restore duration measured by each drill (RTO)', yLabel: 'seconds', series: drillPoints((s) => s.restoreSeconds) })}
<h2>RPO</h2>
${plotSvg({ id: 'plot-rpo', title: 'RPO over time: age of the newest complete backup', yLabel: 'age', series: rpo, budget, format: ageAxis, durationAxis: true })}
</body></html>
`;
}
