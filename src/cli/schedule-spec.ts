import { ScheduleOverlapPolicy, type ScheduleDescription, type ScheduleUpdateOptions } from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import type { Config, TargetConfig } from '../config';
import { calendarToCron, DEFAULT_SCHEDULES, desiredSchedules, normalizeCron, type DesiredSchedule, type PitrSchedules, type ScheduleSettings } from '../domain/schedules';
import { parsePostgresSettings } from '../stores/postgres/settings';
import { searchAttributes } from './run';

/**
 * What a lifeboat schedule should be (from config) and how one in Temporal
 * differs from it: the definitions `lifeboat schedule apply` writes.
 */

/** A run the server could not start in time (server down) is still taken up to this late. */
const CATCHUP_WINDOW_MS = 60 * 60 * 1000;
/** The note `apply` leaves on schedules it pauses for `enabled: false`; only those does it unpause. */
export const DISABLED_NOTE = 'disabled in config: schedules.enabled is false';

/** A postgres target's `pitr.schedules`, when it has a `pitr:` section. */
function pitrSchedulesOf(configFile: string, t: TargetConfig): { pitr?: PitrSchedules } {
  const p = t.kind === 'postgres' ? parsePostgresSettings(configFile, t).pitr : undefined;
  return p ? { pitr: p.schedules } : {};
}

export function settingsOf(config: Config): ScheduleSettings {
  return config.schedules ?? DEFAULT_SCHEDULES;
}

export function desiredOf(config: Config): DesiredSchedule[] {
  return desiredSchedules(
    [...config.targets.values()].map((t) => ({ name: t.name, kind: t.kind, ...pitrSchedulesOf(config.file, t) })),
    settingsOf(config),
  );
}

export function describedCron(d: ScheduleDescription): string {
  const parts = (d.spec.calendars ?? []).map((c) => calendarToCron(c));
  for (const i of d.spec.intervals ?? []) parts.push(`@every ${Math.round(i.every / 1000)}s${i.offset ? `/${Math.round(i.offset / 1000)}s` : ''}`);
  return parts.join('; ');
}

/** Search attributes as comparable values: name -> value, sorted. */
function saValues(sa: unknown): Array<[string, unknown]> {
  const pairs: Array<{ key: { name: string }; value: unknown }> = Array.isArray(sa) ? sa : ((sa as { getAll?: () => Array<{ key: { name: string }; value: unknown }> })?.getAll?.() ?? []);
  return pairs.map((p) => [p.key.name, p.value] as [string, unknown]).sort((a, b) => a[0].localeCompare(b[0]));
}

/** What differs between a schedule in Temporal and the one config wants; empty when nothing does. */
export function differences(d: ScheduleDescription, want: DesiredSchedule, taskQueue: string, tags?: SearchAttributePair[]): string[] {
  const out: string[] = [];
  const cron = describedCron(d);
  if (cron !== normalizeCron(want.cron)) out.push(`cron '${cron}' -> '${want.cron}'`);
  const tz = d.spec.timezone || 'UTC';
  if (tz !== want.timezone) out.push(`timezone ${tz} -> ${want.timezone}`);
  if (d.action.workflowType !== want.workflowType) out.push(`workflow ${d.action.workflowType} -> ${want.workflowType}`);
  if (d.action.taskQueue !== taskQueue) out.push(`task queue ${d.action.taskQueue} -> ${taskQueue}`);
  if (d.action.workflowId !== want.workflowIdPrefix) out.push(`workflow id ${d.action.workflowId} -> ${want.workflowIdPrefix}`);
  if (JSON.stringify(d.action.args ?? []) !== JSON.stringify(want.args)) out.push(`input ${JSON.stringify(d.action.args)} -> ${JSON.stringify(want.args)}`);
  if (tags && JSON.stringify(saValues(d.action.typedSearchAttributes)) !== JSON.stringify(saValues(tags))) out.push('search attributes');
  if (d.policies.overlap !== ScheduleOverlapPolicy.SKIP) out.push(`overlap ${d.policies.overlap} -> SKIP`);
  if (d.policies.catchupWindow !== CATCHUP_WINDOW_MS) out.push(`catch-up window ${d.policies.catchupWindow} ms -> ${CATCHUP_WINDOW_MS} ms`);
  return out;
}

/** Pause state after apply: `enabled: false` pauses; `enabled: true` unpauses only what it paused, never an operator's pause. */
export function stateAfterApply(prev: { paused: boolean; note?: string } | undefined, enabled: boolean): { paused: boolean; note?: string } {
  if (!enabled) return prev?.paused ? prev : { paused: true, note: DISABLED_NOTE };
  if (prev?.paused && prev.note === DISABLED_NOTE) return { paused: false, note: 'enabled in config' };
  return prev ?? { paused: false };
}

/** The search attributes a scheduled run starts with: its operation, targets and kinds. */
export function actionTags(config: Config, want: DesiredSchedule): SearchAttributePair[] {
  const targets = want.target ? [want.target] : [];
  // A scheduled PITR backup or drill is a backup or a drill, like any other.
  const operation = want.kind === 'pitr' ? (want.workflowType === 'pitrDrillWorkflow' ? 'drill' : 'backup') : want.kind;
  return searchAttributes(config, { operation, targets });
}

export function definition(config: Config, want: DesiredSchedule, state: { paused: boolean; note?: string }): ScheduleUpdateOptions {
  return {
    spec: { cronExpressions: [want.cron], timezone: want.timezone },
    action: {
      type: 'startWorkflow',
      workflowType: want.workflowType,
      args: want.args,
      taskQueue: config.temporal.taskQueue,
      workflowId: want.workflowIdPrefix,
      // Scheduled runs are found by target in the Web UI like any other.
      typedSearchAttributes: actionTags(config, want),
      staticSummary: want.description,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW_MS },
    state,
  };
}
