import type { DrillMode } from './plan';

/**
 * The Temporal Schedules lifeboat wants, computed from config: one nightly
 * backup per target (staggered by kind so the stores are not dumped all at
 * once), one drill and one prune. Pure: `lifeboat schedule apply` turns the
 * result into Temporal Schedules.
 */

/** The `schedules:` section of lifeboat.yaml, with defaults filled in. */
export interface ScheduleSettings {
  /** Schedule ids are `<idPrefix>-backup-<target>`, `<idPrefix>-drill`, `<idPrefix>-prune`. */
  idPrefix: string;
  /** IANA time zone the cron expressions are read in. */
  timezone: string;
  /** false: the schedules exist but are paused. */
  enabled: boolean;
  /** Per-target cron overrides; `false` means no backup schedule for that target. */
  backups: Record<string, string | false>;
  drill: string | false;
  drillMode: DrillMode;
  prune: string | false;
}

export const DEFAULT_SCHEDULES: ScheduleSettings = {
  idPrefix: 'lifeboat',
  timezone: 'UTC',
  enabled: true,
  backups: {},
  drill: '0 4 * * *',
  drillMode: 'scratch',
  prune: '0 5 * * *',
};

/** Minutes after midnight of each kind's first nightly backup; later targets of a kind follow every STAGGER_MINUTES. */
export const BACKUP_START: Readonly<Record<string, number>> = { postgres: 2 * 60, clickhouse: 2 * 60 + 30, bucket: 3 * 60 };
/** Kinds without an entry above (added later) start here. */
export const OTHER_KINDS_START = 3 * 60 + 30;
export const STAGGER_MINUTES = 10;
/**
 * Kinds backed up every hour by default rather than nightly (a Vault raft
 * snapshot is small and secrets change during the day), at this minute past
 * the hour; later targets of a kind follow every STAGGER_MINUTES.
 */
export const HOURLY_BACKUP_MINUTE: Readonly<Record<string, number>> = { vault: 15 };

export type ScheduleKind = 'backup' | 'drill' | 'prune' | 'pitr';

/** A postgres target's PITR schedules (its `pitr.schedules`): false for none. */
export interface PitrSchedules {
  full: string | false;
  diff: string | false;
  drill: string | false;
}

/** The defaults of `pitr.schedules` (src/stores/postgres/pitr/settings.ts); targets on a default are staggered. */
export const PITR_DEFAULTS: Readonly<PitrSchedules> = { full: '0 1 * * 0', diff: '0 1 * * 1-6', drill: '30 4 * * *' };

export interface DesiredSchedule {
  id: string;
  kind: ScheduleKind;
  /** The target of a backup schedule. */
  target?: string;
  workflowType: 'backupWorkflow' | 'drillWorkflow' | 'pruneWorkflow' | 'pitrBackupWorkflow' | 'pitrDrillWorkflow';
  args: [Record<string, unknown>];
  /** Temporal appends the scheduled time: `backup/app-pg/scheduled-2026-11-23T02:00:00Z`. */
  workflowIdPrefix: string;
  cron: string;
  timezone: string;
  description: string;
  /** Kept on the schedule: how `apply` recognises the schedules it owns. */
  memo: { lifeboat: { idPrefix: string; kind: ScheduleKind; target?: string; description: string } };
}

/**
 * Schedule ids and the prefix stay within letters, digits, '.', '_' and '-':
 * the server takes any string, but the Web UI has mis-routed ids with '/',
 * ':' or '@' in them, and target names already fit this alphabet.
 */
export const ID_PREFIX = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/;

export function scheduleId(idPrefix: string, name: string): string {
  return `${idPrefix}-${name}`;
}

/** `lifeboat-backup-app-pg` from `backup-app-pg` or itself; what people may type for a schedule. */
export function resolveScheduleId(idPrefix: string, given: string): string {
  return given.startsWith(`${idPrefix}-`) ? given : scheduleId(idPrefix, given);
}

function cronAt(minutes: number): string {
  const m = minutes % (24 * 60);
  return `${m % 60} ${Math.floor(m / 60)} * * *`;
}

/** The desired schedules, in a stable order: backups (config order), drill, prune. */
export function desiredSchedules(targets: ReadonlyArray<{ name: string; kind: string; pitr?: PitrSchedules }>, s: ScheduleSettings = DEFAULT_SCHEDULES): DesiredSchedule[] {
  const out: DesiredSchedule[] = [];
  const seen = new Map<string, number>();
  // Workflow ids must not collide between two lifeboat deployments sharing a namespace.
  const suffix = s.idPrefix === DEFAULT_SCHEDULES.idPrefix ? '' : `-${s.idPrefix}`;
  const make = (kind: ScheduleKind, name: string, rest: Omit<DesiredSchedule, 'id' | 'kind' | 'timezone' | 'memo'>): DesiredSchedule => ({
    id: scheduleId(s.idPrefix, name),
    kind,
    ...rest,
    timezone: s.timezone,
    memo: { lifeboat: { idPrefix: s.idPrefix, kind, ...(rest.target ? { target: rest.target } : {}), description: rest.description } },
  });
  for (const { name, kind } of targets) {
    const group = kind in BACKUP_START ? kind : '(other)';
    const index = seen.get(group) ?? 0;
    seen.set(group, index + 1);
    const override = s.backups[name];
    if (override === false) continue;
    const hourly = HOURLY_BACKUP_MINUTE[kind];
    const cron = override ?? (hourly !== undefined ? `${(hourly + STAGGER_MINUTES * index) % 60} * * * *` : cronAt((BACKUP_START[kind] ?? OTHER_KINDS_START) + STAGGER_MINUTES * index));
    out.push(
      make('backup', `backup-${name}`, {
        target: name,
        workflowType: 'backupWorkflow',
        args: [{ targets: [name] }],
        workflowIdPrefix: `backup/${name}/scheduled${suffix}`,
        cron,
        description: `${hourly !== undefined && override === undefined ? 'hourly' : 'nightly'} backup of ${name} (${kind})`,
      }),
    );
  }
  out.push(...pitrSchedules(targets, make, suffix));
  if (s.drill !== false) {
    out.push(
      make('drill', 'drill', { workflowType: 'drillWorkflow', args: [{ mode: s.drillMode }], workflowIdPrefix: `drill/scheduled${suffix}`, cron: s.drill, description: `nightly ${s.drillMode} drill of every target` }),
    );
  }
  if (s.prune !== false) {
    out.push(make('prune', 'prune', { workflowType: 'pruneWorkflow', args: [{}], workflowIdPrefix: `prune/scheduled${suffix}`, cron: s.prune, description: 'nightly prune by the retention policy' }));
  }
  return out;
}

/** Cron `cron` moved `minutes` later (only for the simple `M H …` form the defaults use). */
function later(cron: string, minutes: number): string {
  const f = cron.split(' ');
  if (minutes === 0 || !/^\d+$/.test(f[0]!) || !/^\d+$/.test(f[1]!)) return cron;
  const m = Number(f[1]) * 60 + Number(f[0]) + minutes;
  return [String(m % 60), String(Math.floor(m / 60) % 24), ...f.slice(2)].join(' ');
}

/**
 * Per target with `pitr:`: a weekly full and a daily differential pgBackRest
 * backup and a nightly PITR drill, from its `pitr.schedules`; targets left on
 * the defaults are staggered by STAGGER_MINUTES so their backups do not start
 * together.
 */
function pitrSchedules(
  targets: ReadonlyArray<{ name: string; kind: string; pitr?: PitrSchedules }>,
  make: (kind: ScheduleKind, name: string, rest: Omit<DesiredSchedule, 'id' | 'kind' | 'timezone' | 'memo'>) => DesiredSchedule,
  suffix: string,
): DesiredSchedule[] {
  const out: DesiredSchedule[] = [];
  targets
    .filter((t) => t.pitr)
    .forEach(({ name, pitr }, index) => {
      const cron = (k: keyof PitrSchedules) => (pitr![k] === PITR_DEFAULTS[k] ? later(PITR_DEFAULTS[k] as string, STAGGER_MINUTES * index) : pitr![k]);
      for (const type of ['full', 'diff'] as const) {
        const c = cron(type);
        if (c === false) continue;
        out.push(
          make('pitr', `pitr-${type}-${name}`, {
            target: name,
            workflowType: 'pitrBackupWorkflow',
            args: [{ target: name, type }],
            workflowIdPrefix: `pitr-backup/${name}/scheduled-${type}${suffix}`,
            cron: c,
            description: `${type === 'full' ? 'weekly full' : 'daily differential'} pgBackRest backup of ${name}`,
          }),
        );
      }
      const d = cron('drill');
      if (d !== false) {
        out.push(make('pitr', `pitr-drill-${name}`, { target: name, workflowType: 'pitrDrillWorkflow', args: [{ target: name }], workflowIdPrefix: `pitr-drill/${name}/scheduled${suffix}`, cron: d, description: `nightly PITR drill of ${name}` }));
      }
    });
  return out;
}

// ---- the config section (its schema is in src/config) -----------------

const CRON_FIELD = /^[A-Za-z0-9*?,/-]+$/;
const CRON_SHORTHAND = /^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$/;

/** A light check (Temporal checks fully on apply): 5-7 fields, or a shorthand; no `TZ=` (use `timezone`). */
export function isCron(v: string): boolean {
  const t = v.trim();
  if (CRON_SHORTHAND.test(t) || /^@every \d+[smhd](\/\d+[smhd])?$/.test(t)) return true;
  const fields = t.split(/\s+/);
  return fields.length >= 5 && fields.length <= 7 && fields.every((f) => CRON_FIELD.test(f));
}

export function isTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

// ---- reading back what Temporal has -------------------------------------

/** A calendar field as Temporal describes it (the server compiles cron into these). */
export interface CalendarRange {
  start: number | string;
  end: number | string;
  step: number;
}
export interface CalendarDescription {
  second: CalendarRange[];
  minute: CalendarRange[];
  hour: CalendarRange[];
  dayOfMonth: CalendarRange[];
  month: CalendarRange[];
  year: CalendarRange[];
  dayOfWeek: CalendarRange[];
}

const MONTHS = ['JANUARY', 'FEBRUARY', 'MARCH', 'APRIL', 'MAY', 'JUNE', 'JULY', 'AUGUST', 'SEPTEMBER', 'OCTOBER', 'NOVEMBER', 'DECEMBER'];
const DAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'];

function num(v: number | string, names?: string[], base = 0): number {
  if (typeof v === 'number') return v;
  const i = names ? names.indexOf(v.toUpperCase()) : -1;
  return i >= 0 ? i + base : Number(v);
}

function field(ranges: CalendarRange[], lo: number, hi: number, names?: string[], base = 0): string {
  if (ranges.length === 0) return '*';
  return ranges
    .map((r) => {
      const start = num(r.start, names, base);
      const end = Math.max(start, num(r.end, names, base));
      const step = r.step > 1 ? r.step : 1;
      if (start === lo && end === hi) return step > 1 ? `*/${step}` : '*';
      if (start === end) return String(start);
      return `${start}-${end}${step > 1 ? `/${step}` : ''}`;
    })
    .join(',');
}

/** The cron expression a described calendar means: 5 fields, or 7 when seconds or years are set. */
export function calendarToCron(c: CalendarDescription): string {
  const five = [
    field(c.minute, 0, 59),
    field(c.hour, 0, 23),
    field(c.dayOfMonth, 1, 31),
    field(c.month, 1, 12, MONTHS, 1),
    field(c.dayOfWeek, 0, 6, DAYS, 0),
  ];
  const second = field(c.second, 0, 59);
  const year = field(c.year, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY);
  return second === '0' && year === '*' ? five.join(' ') : [second, ...five, year].join(' ');
}

const SHORTHANDS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/**
 * A cron expression in the form calendarToCron gives back, as far as cheaply
 * possible (shorthands, month and day names); used to tell whether a schedule
 * changed. A spelling it does not normalise only costs a needless update.
 */
export function normalizeCron(cron: string): string {
  const t = cron.trim().replace(/\s+/g, ' ');
  const s = SHORTHANDS[t.toLowerCase()] ?? t;
  const f = s.split(' ');
  if (f.length !== 5) return s;
  const names = (v: string, list: string[], base: number) =>
    v.replace(/[A-Za-z]+/g, (n) => {
      const i = n.length >= 3 ? list.findIndex((x) => x.startsWith(n.toUpperCase().slice(0, 3))) : -1;
      return i < 0 ? n : String(i + base);
    });
  f[3] = names(f[3]!, MONTHS, 1);
  f[4] = names(f[4]!, DAYS, 0);
  return f.join(' ');
}
