import type { ArchiverStatus } from './pitr';
import { describeMarkers, markersOk } from './markers';
import type { DrillMode, DrillRecord } from './plan';

/**
 * The RPO/RTO report, from what the repository proves rather than what a
 * schedule promises: RPO is the age of the newest complete backup (how much
 * would be lost if everything failed now); RTO is what drills measured for a
 * real restore from the repository. Pure: `lifeboat report` gathers the facts.
 */

export interface NewestBackup {
  backupId: string;
  /** The manifest's finishedAt: the moment the backup became valid. */
  finishedAt: string;
}

export interface LatestWorst {
  /** From the newest drill that measured this target; null if none did. */
  latest: number | null;
  /** The largest of the drills considered; null if none measured this target. */
  worst: number | null;
}

export interface TargetDrillOutcome {
  workflowId: string;
  finishedAt: string;
  mode: DrillMode;
  ok: boolean;
  failures: string[];
}

export interface TargetReport {
  target: string;
  kind: string;
  lastBackup: NewestBackup | null;
  /** Seconds since the newest complete backup finished; null: never backed up. For `pitr:` targets, see `rpoFrom`. */
  rpoSeconds: number | null;
  /** What `rpoSeconds` is the age of: the newest backup, or (targets with `pitr:`) the last WAL segment in the repository. */
  rpoFrom?: 'backup' | 'wal-archive';
  /** Targets with `pitr:`: the server's archiver, asked now (`server`) or as the PITR catalog last saw it (`catalog`). */
  pitr?: ArchiverStatus & { source: 'server' | 'catalog' };
  /** How many of the drills considered measured this target. */
  drills: number;
  /** The newest drill that covered this target (or failed before it could say which it covered). */
  lastDrill: TargetDrillOutcome | null;
  restoreSeconds: LatestWorst;
  backupSeconds: LatestWorst;
}

export interface Report {
  generatedAt: string;
  /** The N of `--last N`: how many of the newest drill records were read. */
  last: number;
  drillsConsidered: number;
  targets: TargetReport[];
}

export interface ReportInput {
  now: Date;
  targets: ReadonlyArray<{ name: string; kind: string }>;
  /** The newest complete backup of each target, if any. */
  newest: ReadonlyMap<string, NewestBackup>;
  /** The newest drill records (any order). */
  drills: readonly DrillRecord[];
  last: number;
}

function latestWorst(values: number[]): LatestWorst {
  return values.length ? { latest: values[0]!, worst: Math.max(...values) } : { latest: null, worst: null };
}

/** A drill record as it concerns one target; undefined when it did not cover it. */
function outcomeFor(r: DrillRecord, target: string): TargetDrillOutcome | undefined {
  const base = { workflowId: r.workflowId, finishedAt: r.finishedAt, mode: r.mode };
  const store = r.stores.find((s) => s.target === target);
  if (store) {
    const ok = markersOk(store.markers);
    const own = r.failures.filter((f) => f.startsWith(`${target}:`));
    return { ...base, ok, failures: ok ? [] : own.length ? own : [describeMarkers(target, store.markers)] };
  }
  // A drill that failed before measuring any store does not say which targets
  // it was for; it is shown for every target rather than hidden.
  if (r.stores.length === 0 && !r.ok) return { ...base, ok: false, failures: r.failures };
  return undefined;
}

export function buildReport(input: ReportInput): Report {
  const drills = [...input.drills].sort((a, b) => b.startedAt.localeCompare(a.startedAt)).slice(0, input.last);
  const targets = input.targets.map(({ name, kind }): TargetReport => {
    const b = input.newest.get(name);
    const measured = drills.flatMap((r) => r.stores.filter((s) => s.target === name));
    let lastDrill: TargetDrillOutcome | null = null;
    for (const r of drills) {
      const o = outcomeFor(r, name);
      if (o) {
        lastDrill = o;
        break;
      }
    }
    return {
      target: name,
      kind,
      lastBackup: b ? { backupId: b.backupId, finishedAt: b.finishedAt } : null,
      rpoSeconds: b ? Math.max(0, (input.now.getTime() - new Date(b.finishedAt).getTime()) / 1000) : null,
      drills: measured.length,
      lastDrill,
      restoreSeconds: latestWorst(measured.map((s) => s.restoreSeconds)),
      backupSeconds: latestWorst(measured.map((s) => s.backupSeconds)),
    };
  });
  return { generatedAt: input.now.toISOString(), last: input.last, drillsConsidered: drills.length, targets };
}

/** `42s`, `7m05s`, `3h12m`, `2d04h`; `never` for null. */
export function formatAge(seconds: number | null): string {
  if (seconds === null) return 'never';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}
