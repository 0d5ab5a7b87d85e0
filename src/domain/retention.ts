import { backupIdTime } from './names';

/** Grandfather-father-son retention, counted in periods that have backups (like restic's --keep-daily). */
export interface RetentionPolicy {
  /** Always keep the newest N backups. */
  keepLast: number;
  /** Keep the newest backup of each of the last N days that have one. */
  daily: number;
  weekly: number;
  monthly: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { keepLast: 1, daily: 7, weekly: 4, monthly: 0 };

export interface BackupFacts {
  backupId: string;
  /** The last verification passed. */
  verified: boolean;
}

export interface RetentionDecision {
  backupId: string;
  keep: boolean;
  /** Why it is kept: `last`, `daily 2026-11-23`, `weekly 2026-W47`, `monthly 2026-11`, `newest verified`. */
  reasons: string[];
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day); // the Thursday of this week decides its year
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

const PERIODS: Array<{ name: 'daily' | 'weekly' | 'monthly'; of: (d: Date) => string }> = [
  { name: 'daily', of: (d) => d.toISOString().slice(0, 10) },
  { name: 'weekly', of: isoWeek },
  { name: 'monthly', of: (d) => d.toISOString().slice(0, 7) },
];

/** Decides, for one target's backups, which to keep and why. Pure. */
export function applyRetention(backups: readonly BackupFacts[], policy: RetentionPolicy): RetentionDecision[] {
  const newestFirst = [...backups].sort((a, b) => b.backupId.localeCompare(a.backupId));
  const reasons = new Map<string, string[]>(newestFirst.map((b) => [b.backupId, []]));
  const keep = (id: string, why: string) => reasons.get(id)!.push(why);

  newestFirst.slice(0, policy.keepLast).forEach((b) => keep(b.backupId, 'last'));
  for (const { name, of } of PERIODS) {
    const seen = new Set<string>();
    for (const b of newestFirst) {
      if (seen.size >= policy[name]) break;
      const period = of(backupIdTime(b.backupId));
      if (seen.has(period)) continue;
      seen.add(period);
      keep(b.backupId, `${name} ${period}`);
    }
  }
  // Whatever the policy says, the newest backup known to restore is never deleted.
  const newestVerified = newestFirst.find((b) => b.verified);
  if (newestVerified) keep(newestVerified.backupId, 'newest verified');

  return newestFirst.map((b) => ({ backupId: b.backupId, keep: reasons.get(b.backupId)!.length > 0, reasons: reasons.get(b.backupId)! }));
}
