/**
 * Point-in-time recovery (pgBackRest) as workflows see it: inputs, results and
 * the pure rules (target times, the recoverable window). Names, ids, times and
 * numbers only: never a secret, never data.
 */

export type PitrBackupType = 'full' | 'diff' | 'incr';
export const PITR_BACKUP_TYPES: readonly PitrBackupType[] = ['full', 'diff', 'incr'];

/** One pgBackRest backup, from `pgbackrest info --output=json`. */
export interface PitrBackup {
  /** pgBackRest's label, e.g. `20261201-105138F` or `20261201-105138F_20261202-010000I`. */
  label: string;
  type: PitrBackupType;
  startedAt: string;
  stoppedAt: string;
  /** Size of the database at backup time, and what this backup added to the repository. */
  databaseBytes: number;
  repositoryBytes: number;
  /** The backup this one depends on (diff, incr). */
  prior: string | null;
  /** First and last WAL segment the backup needs. */
  walStart: string;
  walStop: string;
  /** pgBackRest found page checksum errors. */
  error: boolean;
  annotations: Record<string, string>;
}

/** The times a restore can reach: from the end of the oldest backup to the last WAL segment in the repository. */
export interface RecoverableWindow {
  earliest: string;
  latest: string;
  /** Where `latest` comes from: the server's archiver (checked against the repository) or, unreachable, the newest backup. */
  latestFrom: 'archiver' | 'backup';
}

/** What lifeboat keeps of a stanza in its repository (`<target>/pitr.json`), so `ls` needs no pgBackRest. */
export interface PitrCatalog {
  target: string;
  stanza: string;
  /** Where the pgBackRest repository is, e.g. `s3://lifeboat/backups/pitr/app-pg`. */
  repository: string;
  refreshedAt: string;
  serverVersion?: string;
  backups: PitrBackup[];
  /** Oldest and newest WAL segment in the repository. */
  archive: { min: string; max: string } | null;
  window: RecoverableWindow | null;
  /** The server's archiver at refresh time (pg_stat_archiver). */
  archiver?: ArchiverStatus;
}

export interface ArchiverStatus {
  lastArchivedWal: string | null;
  lastArchivedTime: string | null;
  lastFailedWal: string | null;
  lastFailedTime: string | null;
  /** The last archived segment was found in the repository. */
  inRepository: boolean;
}

export interface PitrTargetInfo {
  target: string;
  /** The queue whose worker runs beside the database (pgBackRest needs its data directory). */
  taskQueue: string;
  stanza: string;
}

export interface PitrBackupInput {
  target: string;
  type: PitrBackupType;
  /** How long to wait while another run holds the target (default 3600). */
  lockWaitSeconds?: number;
}

export interface PitrBackupResult {
  target: string;
  type: PitrBackupType;
  label: string;
  seconds: number;
  databaseBytes: number;
  repositoryBytes: number;
  /** The task queue the backup ran on (the worker beside the database). */
  ranOn: string;
  expired: string[];
  window: RecoverableWindow | null;
}

export interface PitrRestoreInput {
  target: string;
  /** ISO 8601 with a zone (`2026-12-01T10:15:00Z`); omitted with `latest`. */
  toTime?: string;
  /** Recover to the end of the archived WAL. */
  latest?: boolean;
  yes?: boolean;
  dryRun?: boolean;
  approvalTimeoutSeconds?: number;
}

export interface PitrRestorePlan {
  target: string;
  stanza: string;
  /** `time` with a target, or `latest`. */
  mode: 'time' | 'latest';
  /** The target in PostgreSQL's form (`2026-12-01 10:15:00.000000+00`). */
  targetTime?: string;
  window: RecoverableWindow;
  /** The backup pgBackRest restores from: the newest that ended before the target. */
  backup: string;
  dataDir: string;
  /** What the saga stops and starts, in order, for the operator to read before approving. */
  steps: string[];
}

export interface PitrRestoreResult {
  plan: PitrRestorePlan;
  dryRun: boolean;
  seconds: number;
  /** pg_last_xact_replay_timestamp() after recovery: the last transaction replayed. */
  lastReplayed: string | null;
  steps: string[];
}

export interface PitrDrillInput {
  target: string;
  /** Seconds between batch A and batch B (default and least: 2). */
  gapSeconds?: number;
}

export interface PitrDrillResult {
  ok: boolean;
  target: string;
  nonce: string;
  /** The time the drill restored to, between batch A and batch B. */
  targetTime: string;
  backup: string;
  markersBefore: { expected: number; found: number };
  markersAfter: { expected: number; found: number };
  restoreSeconds: number;
  /** pg_last_xact_replay_timestamp() of the scratch copy. */
  lastReplayed: string | null;
  /** Seconds between the last replayed transaction and the target (>= 0: before it). */
  precisionSeconds: number | null;
  failures: string[];
}

// ---------------------------------------------------------------- rules

const TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?\s*(Z|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * A target time as given (ISO 8601, with a zone: a time without one would
 * mean the server's zone, which the operator may not know) in UTC, to the
 * microsecond: `pg` is what pgBackRest and PostgreSQL get, `iso` is for people.
 */
export function parseTargetTime(given: string): { pg: string; iso: string; ms: number } {
  const m = TIME.exec(given.trim());
  if (!m) throw new Error(`'${given}' is not a time with a zone; write it like 2026-12-01T10:15:00Z or 2026-12-01 12:15:00+02:00`);
  const [, y, mo, d, h, mi, s, frac = '', zone] = m;
  const z = zone!.toUpperCase() === 'Z' ? '+00' : zone!.replace(':', '');
  const offsetMin = (z.startsWith('-') ? -1 : 1) * (Number(z.slice(1, 3)) * 60 + (z.length > 3 ? Number(z.slice(3, 5)) : 0));
  const naive = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
  // Date.UTC rolls 2026-02-30 over into March: a field that changed was out of range.
  const fields = [naive.getUTCFullYear(), naive.getUTCMonth() + 1, naive.getUTCDate(), naive.getUTCHours(), naive.getUTCMinutes(), naive.getUTCSeconds()];
  if (fields.some((v, i) => v !== Number([y, mo, d, h, mi, s][i])) || Math.abs(offsetMin) > 18 * 60) throw new Error(`'${given}' is not a valid time`);
  const wholeMs = naive.getTime() - offsetMin * 60_000;
  const t = new Date(wholeMs);
  const micros = frac.padEnd(6, '0');
  const day = t.toISOString().slice(0, 10);
  const clock = t.toISOString().slice(11, 19);
  return { pg: `${day} ${clock}.${micros}+00`, iso: `${day}T${clock}.${micros}Z`, ms: wholeMs + Math.floor(Number(micros) / 1000) };
}

/**
 * The first time a backup serves a time target: pgBackRest picks, for
 * `--type=time`, the newest backup whose stop time (whole seconds) is
 * strictly before the target's whole second, so a target in the second the
 * backup ended is refused ("unable to find backup set with stop time less than").
 */
export function firstTargetMs(b: Pick<PitrBackup, 'stoppedAt'>): number {
  return Math.floor(Date.parse(b.stoppedAt) / 1000) * 1000 + 1000;
}

/**
 * The PITR drill's target time: when batch A committed, unless the backup it
 * restores from ended in that same second, then the next whole second
 * (batch B comes at least 2 s after A, so T stays between them).
 */
export function drillTargetTime(committedBefore: string, latest: Pick<PitrBackup, 'stoppedAt'>): string {
  const first = firstTargetMs(latest);
  return Date.parse(committedBefore) >= first ? committedBefore : new Date(first).toISOString();
}

/** Why a target time cannot be reached, or undefined when it is inside the window. */
export function outsideWindow(targetMs: number, w: RecoverableWindow): string | undefined {
  const earliest = Date.parse(w.earliest);
  const latest = Date.parse(w.latest);
  if (targetMs < earliest) return `it is not in a later second than the end of the oldest backup`;
  if (targetMs > latest) return w.latestFrom === 'archiver' ? 'it is after the last WAL segment archived into the repository' : 'it is after the newest backup and the server could not say what it archived since';
  return undefined;
}

/** The newest backup that ended in a second before `targetMs`'s (what pgBackRest itself picks for a time target). */
export function backupFor(backups: readonly PitrBackup[], targetMs: number | undefined): PitrBackup | undefined {
  const usable = backups.filter((b) => targetMs === undefined || firstTargetMs(b) <= targetMs);
  return usable.sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt)).at(-1);
}

/** The window from the backups and the archiver's last segment (when it is in the repository). */
export function recoverableWindow(backups: readonly PitrBackup[], archiver: Pick<ArchiverStatus, 'lastArchivedTime' | 'inRepository'> | undefined): RecoverableWindow | null {
  if (backups.length === 0) return null;
  const sorted = [...backups].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt));
  const earliest = new Date(firstTargetMs(sorted[0]!)).toISOString();
  const newest = sorted.at(-1)!.stoppedAt;
  if (archiver?.inRepository && archiver.lastArchivedTime && archiver.lastArchivedTime > newest) {
    return { earliest, latest: archiver.lastArchivedTime, latestFrom: 'archiver' };
  }
  return { earliest, latest: newest, latestFrom: 'backup' };
}

/** A WAL file name's segment part (a `.backup`, `.partial` or `.history` suffix dropped). */
export function walSegment(name: string): string | undefined {
  return /^[0-9A-F]{24}/.exec(name)?.[0];
}
