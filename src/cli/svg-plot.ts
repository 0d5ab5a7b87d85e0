/**
 * A small time-series chart as inline SVG, drawn here rather than by a
 * charting script so the report page needs no network and no JavaScript:
 * one polyline per series, a circle per measured point (its tooltip says what
 * it is), time on x, seconds on y, and an optional budget line.
 */

export interface PlotPoint {
  /** Milliseconds since the epoch. */
  t: number;
  y: number;
  /** Tooltip; no circle is drawn for a point without one (the corners of a sawtooth). */
  label?: string;
}

export interface PlotSeries {
  name: string;
  points: PlotPoint[];
}

export interface PlotOptions {
  id: string;
  title: string;
  yLabel: string;
  series: PlotSeries[];
  /** A dashed horizontal line, e.g. the RPO budget. */
  budget?: { y: number; label: string };
  /** How a y value reads on the axis and in tooltips. */
  format?: (y: number) => string;
  /** y is a duration in seconds: ticks fall on minutes, hours and days. */
  durationAxis?: boolean;
}

const W = 760;
const H = 260;
const M = { left: 64, right: 24, top: 44, bottom: 40 };
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const DURATION_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/** A step that gives about `n` ticks up to `max`: 1, 2 or 5 times a power of ten, or a round duration. */
function niceStep(max: number, n: number, duration: boolean): number {
  const raw = max / n;
  if (duration && raw <= DURATION_STEPS[DURATION_STEPS.length - 1]!) return DURATION_STEPS.find((s) => raw <= s)!;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => raw <= s)!;
}

function timeLabel(t: number, span: number): string {
  const iso = new Date(t).toISOString();
  if (span > 3 * 86_400_000) return iso.slice(0, 10);
  if (span > 3 * 3_600_000) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return iso.slice(11, 19);
}

export function plotSvg(o: PlotOptions): string {
  const fmt = o.format ?? ((y: number) => `${Math.round(y * 10) / 10}`);
  const all = o.series.flatMap((s) => s.points);
  const title = `<text class="plot-title" x="${M.left}" y="18">${escapeHtml(o.title)}</text>`;
  if (all.length === 0) {
    return `<svg class="plot empty" id="${o.id}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">${title}<text x="${W / 2}" y="${H / 2}" text-anchor="middle">nothing recorded yet</text></svg>`;
  }
  let t0 = Math.min(...all.map((p) => p.t));
  let t1 = Math.max(...all.map((p) => p.t));
  if (t1 === t0) {
    t0 -= 3_600_000;
    t1 += 3_600_000;
  }
  const yMaxRaw = Math.max(...all.map((p) => p.y), o.budget?.y ?? 0) || 1;
  const step = niceStep(yMaxRaw, 5, o.durationAxis === true);
  const yMax = Math.ceil(yMaxRaw / step) * step;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (t: number) => M.left + ((t - t0) / (t1 - t0)) * pw;
  const y = (v: number) => M.top + ph - (v / yMax) * ph;
  const r = (n: number) => n.toFixed(1);

  const parts: string[] = [title];
  for (let v = 0; v <= yMax + step / 2; v += step) {
    parts.push(`<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${r(y(v))}" y2="${r(y(v))}"/>`);
    parts.push(`<text class="tick" x="${M.left - 6}" y="${r(y(v) + 4)}" text-anchor="end">${escapeHtml(fmt(v))}</text>`);
  }
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    const anchor = i === 0 ? 'start' : i === ticks ? 'end' : 'middle';
    parts.push(`<text class="tick" x="${r(x(t))}" y="${H - M.bottom + 16}" text-anchor="${anchor}">${timeLabel(t, t1 - t0)}</text>`);
  }
  parts.push(`<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}"/>`);
  parts.push(`<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${M.top + ph}" y2="${M.top + ph}"/>`);
  parts.push(`<text class="tick" transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel)}</text>`);
  if (o.budget) {
    parts.push(`<line class="budget" x1="${M.left}" x2="${W - M.right}" y1="${r(y(o.budget.y))}" y2="${r(y(o.budget.y))}"><title>${escapeHtml(o.budget.label)}</title></line>`);
  }
  o.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = [...s.points].sort((a, b) => a.t - b.t);
    parts.push(`<g class="series" data-series="${escapeHtml(s.name)}">`);
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.map((p) => `${r(x(p.t))},${r(y(p.y))}`).join(' ')}"/>`);
    for (const p of pts) {
      if (p.label === undefined) continue;
      parts.push(`<circle cx="${r(x(p.t))}" cy="${r(y(p.y))}" r="3.5" fill="${color}"><title>${escapeHtml(`${s.name}: ${fmt(p.y)} — ${p.label}`)}</title></circle>`);
    }
    parts.push('</g>');
    parts.push(`<g class="legend"><rect x="${M.left + i * 130}" y="26" width="10" height="10" fill="${color}"/><text x="${M.left + 14 + i * 130}" y="35">${escapeHtml(s.name)}</text></g>`);
  });
  return `<svg class="plot" id="${o.id}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(o.title)}">${parts.join('')}</svg>`;
}
