import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleDescription } from '@temporalio/client';
import type { Config } from '../config';
import { resolveScheduleId, type DesiredSchedule } from '../domain/schedules';
import { actionTags, definition, describedCron, desiredOf, differences, settingsOf, stateAfterApply } from './schedule-spec';
import { LifeboatError } from '../errors';
import { connect, uiUrl } from './client';
import type { Output } from './output';

/**
 * `lifeboat schedule …`: the Temporal Schedules that config asks for
 * (schedules: in lifeboat.yaml), made and kept in step by `apply`. Temporal
 * runs them; a worker on the config's task queue does the work.
 */

type Status = 0 | 1;

function schedulesUrl(config: Config, id?: string): string | undefined {
  if (!config.temporal.uiUrl) return undefined;
  const base = `${config.temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporal.namespace)}/schedules`;
  return id ? `${base}/${encodeURIComponent(id)}` : base;
}

function notFound(config: Config, id: string): LifeboatError {
  return new LifeboatError(
    'ScheduleNotFound',
    `schedule '${id}' does not exist in namespace '${config.temporal.namespace}' at ${config.temporal.address}; run 'lifeboat schedule apply' to create the configured schedules, 'lifeboat schedule ls' to see them`,
  );
}

async function describe(client: Client, id: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(id).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

function lifeboatMemo(memo: Record<string, unknown> | undefined): { idPrefix?: string; description?: string } | undefined {
  const m = memo?.lifeboat;
  return typeof m === 'object' && m !== null ? (m as { idPrefix?: string; description?: string }) : undefined;
}

/**
 * Schedules in Temporal under our id prefix: `owned` were made by `apply` with
 * this prefix (the memo says so) and may be deleted by it; `foreign` carry the
 * prefix but not the memo, and are only shown. Listing is eventually
 * consistent: a schedule made a moment ago may be missing.
 */
async function listExisting(client: Client, idPrefix: string): Promise<{ owned: Map<string, string | undefined>; foreign: string[] }> {
  const owned = new Map<string, string | undefined>();
  const foreign: string[] = [];
  for await (const s of client.schedule.list()) {
    if (!s.scheduleId.startsWith(`${idPrefix}-`)) continue;
    const m = lifeboatMemo(s.memo);
    if (m?.idPrefix === idPrefix) owned.set(s.scheduleId, m.description);
    else if (!m) foreign.push(s.scheduleId);
  }
  return { owned, foreign };
}

interface AppliedRow {
  id: string;
  result: 'created' | 'updated' | 'unchanged';
  changes: string[];
  cron: string;
  timezone: string;
  workflowType: string;
  args: unknown[];
  paused: boolean;
  note?: string;
  description: string;
}

async function applyOne(client: Client, config: Config, want: DesiredSchedule): Promise<AppliedRow> {
  const { enabled } = settingsOf(config);
  const handle = client.schedule.getHandle(want.id);
  const row = { id: want.id, cron: want.cron, timezone: want.timezone, workflowType: want.workflowType, args: want.args, description: want.description };
  let prev = await describe(client, want.id);
  if (!prev) {
    const state = stateAfterApply(undefined, enabled);
    try {
      await client.schedule.create({ scheduleId: want.id, memo: want.memo, ...definition(config, want, state) });
      return { ...row, result: 'created', changes: [], ...state };
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      prev = await handle.describe(); // made meanwhile by another apply: bring it in step below
    }
  }
  const state = stateAfterApply({ paused: prev.state.paused, note: prev.state.note || undefined }, enabled);
  const changes = differences(prev, want, config.temporal.taskQueue, actionTags(config, want));
  if (state.paused !== prev.state.paused) changes.push(state.paused ? 'paused (schedules.enabled: false)' : 'unpaused (schedules.enabled: true)');
  if (changes.length === 0) return { ...row, result: 'unchanged', changes, ...state };
  await handle.update(() => definition(config, want, state));
  return { ...row, result: 'updated', changes, ...state };
}

/** `schedule apply`: create or update every configured schedule; delete the ones config no longer wants. Idempotent. */
export async function apply(config: Config, out: Output): Promise<Status> {
  const s = settingsOf(config);
  const want = desiredOf(config);
  const t = await connect(config);
  try {
    const rows: AppliedRow[] = [];
    for (const w of want) rows.push(await applyOne(t.client, config, w));
    const wanted = new Set(want.map((w) => w.id));
    const { owned, foreign } = await listExisting(t.client, s.idPrefix);
    const deleted: Array<{ id: string; description?: string }> = [];
    for (const [id, description] of owned) {
      if (wanted.has(id)) continue;
      try {
        await t.client.schedule.getHandle(id).delete();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      }
      deleted.push({ id, description });
    }
    const leftAlone = foreign.filter((id) => !wanted.has(id));
    const url = schedulesUrl(config);
    out.result({ ok: true, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, enabled: s.enabled, schedules: rows, deleted, leftAlone, uiUrl: url }, [
      ...rows.map((r) => {
        const what = `${r.result.padEnd(10)}${r.id}  ${r.cron} ${r.timezone}  ${r.workflowType} ${JSON.stringify(r.args[0])}${r.paused ? `  PAUSED${r.note ? ` (${r.note})` : ''}` : ''}`;
        return r.changes.length ? `${what}\n          ${r.changes.join('; ')}` : what;
      }),
      ...deleted.map((d) => `deleted   ${d.id}  (${d.description ?? 'a lifeboat schedule'}: no longer in ${config.file})`),
      ...leftAlone.map((id) => `left alone ${id}: it has the '${s.idPrefix}-' prefix but was not made by 'lifeboat schedule apply'`),
      ...(s.enabled ? [] : ['schedules.enabled is false: the schedules exist but are paused']),
      ...rows.filter((r) => s.enabled && r.paused).map((r) => `note: ${r.id} is still paused${r.note ? ` (${r.note})` : ''}; 'lifeboat schedule unpause ${r.id}' resumes it`),
      ...(url ? [`Web UI: ${url}`] : []),
    ]);
    return 0;
  } finally {
    await t.close();
  }
}

async function lastRun(client: Client, config: Config, d: ScheduleDescription) {
  const a = d.info.recentActions[d.info.recentActions.length - 1];
  if (!a) return null;
  const { workflowId, firstExecutionRunId: runId } = a.action.workflow;
  let status = 'UNKNOWN';
  try {
    status = (await client.workflow.getHandle(workflowId, runId).describe()).status.name;
  } catch {
    // the run's history may have been removed by the namespace's retention
  }
  return { workflowId, runId, takenAt: a.takenAt.toISOString(), status, uiUrl: uiUrl(config, workflowId, runId) };
}

/** Every schedule to show: the configured ones plus any owned or prefixed ones that Temporal lists. */
async function knownIds(client: Client, config: Config): Promise<{ ids: string[]; managed: Set<string> }> {
  const s = settingsOf(config);
  const { owned, foreign } = await listExisting(client, s.idPrefix);
  const managed = new Set([...desiredOf(config).map((w) => w.id), ...owned.keys()]);
  return { ids: [...new Set([...managed, ...foreign])].sort(), managed };
}

/** `schedule ls`: each schedule's cron, next runs, pause state and the result of its last run. */
export async function ls(config: Config, out: Output): Promise<Status> {
  const t = await connect(config);
  try {
    const { ids, managed } = await knownIds(t.client, config);
    const rows = [];
    const missing: string[] = [];
    for (const id of ids) {
      const d = await describe(t.client, id);
      if (!d) {
        missing.push(id);
        continue;
      }
      rows.push({
        id,
        managed: managed.has(id),
        description: lifeboatMemo(d.memo)?.description,
        cron: describedCron(d),
        timezone: d.spec.timezone || 'UTC',
        workflowType: d.action.workflowType,
        taskQueue: d.action.taskQueue,
        args: d.action.args,
        overlap: d.policies.overlap,
        paused: d.state.paused,
        note: d.state.note || undefined,
        nextRuns: d.info.nextActionTimes.slice(0, 3).map((x) => x.toISOString()),
        running: d.info.runningActions.map((r) => r.workflow.workflowId),
        lastRun: await lastRun(t.client, config, d),
        uiUrl: schedulesUrl(config, id),
      });
    }
    const header = ['SCHEDULE', 'CRON', 'NEXT RUN', 'STATE', 'LAST RUN'];
    const cells = rows.map((r) => [
      r.id,
      `${r.cron} ${r.timezone}`,
      r.nextRuns[0] ?? '-',
      r.paused ? `paused${r.note ? ` (${r.note})` : ''}` : r.running.length ? 'running' : 'active',
      r.lastRun ? `${r.lastRun.status} ${r.lastRun.takenAt} ${r.lastRun.workflowId}` : '-',
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const line = (c: string[]) =>
      c
        .map((x, i) => x.padEnd(widths[i]! + 2))
        .join('')
        .trimEnd();
    const url = schedulesUrl(config);
    out.result({ ok: true, namespace: config.temporal.namespace, schedules: rows, missing, uiUrl: url }, [
      ...(rows.length ? [line(header), ...cells.map(line)] : [`no lifeboat schedules in namespace '${config.temporal.namespace}'`]),
      ...missing.map((id) => `missing: ${id} is configured but not in Temporal; run 'lifeboat schedule apply'`),
      ...(url ? [`Web UI: ${url}`] : []),
    ]);
    return 0;
  } finally {
    await t.close();
  }
}

async function targetsOf(client: Client, config: Config, id: string | undefined, all: boolean | undefined, verb: string): Promise<string[]> {
  if (id && all) throw new LifeboatError('ConfigError', `${verb} takes a schedule id or --all, not both`);
  if (!id && !all) throw new LifeboatError('ConfigError', `${verb} needs a schedule id (see 'lifeboat schedule ls') or --all`);
  if (id) return [resolveScheduleId(settingsOf(config).idPrefix, id)];
  const { managed } = await knownIds(client, config);
  return [...managed].sort();
}

async function setPaused(config: Config, out: Output, paused: boolean, id: string | undefined, o: { all?: boolean; note?: string }): Promise<Status> {
  const verb = paused ? 'pause' : 'unpause';
  const note = o.note ?? `${paused ? 'paused' : 'unpaused'} with 'lifeboat schedule ${verb}'`;
  const t = await connect(config);
  try {
    const done: string[] = [];
    for (const sid of await targetsOf(t.client, config, id, o.all, `schedule ${verb}`)) {
      try {
        const h = t.client.schedule.getHandle(sid);
        await (paused ? h.pause(note) : h.unpause(note));
        done.push(sid);
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
        if (!o.all) throw notFound(config, sid);
      }
    }
    out.result({ ok: true, [paused ? 'paused' : 'unpaused']: done, note }, done.length ? done.map((d) => `${paused ? 'paused' : 'unpaused'} ${d}  (${note})`) : ['no schedules to ' + verb]);
    return 0;
  } finally {
    await t.close();
  }
}

export const pause = (config: Config, out: Output, id: string | undefined, o: { all?: boolean; note?: string }) => setPaused(config, out, true, id, o);
export const unpause = (config: Config, out: Output, id: string | undefined, o: { all?: boolean; note?: string }) => setPaused(config, out, false, id, o);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `schedule trigger`: one run now, under the schedule's own rules: with
 * overlap SKIP nothing starts while its previous run is still going. Waits a
 * few seconds to say which run started.
 */
export async function trigger(config: Config, out: Output, id: string, o: { waitSeconds?: number } = {}): Promise<Status> {
  const sid = resolveScheduleId(settingsOf(config).idPrefix, id);
  const t = await connect(config);
  try {
    const before = await describe(t.client, sid);
    if (!before) throw notFound(config, sid);
    await t.client.schedule.getHandle(sid).trigger(ScheduleOverlapPolicy.SKIP);
    const deadline = Date.now() + (o.waitSeconds ?? 15) * 1000;
    while (Date.now() < deadline) {
      await sleep(300);
      const d = (await describe(t.client, sid)) ?? before;
      if (d.info.numActionsTaken > before.info.numActionsTaken) {
        const a = d.info.recentActions[d.info.recentActions.length - 1]!.action.workflow;
        const url = uiUrl(config, a.workflowId, a.firstExecutionRunId);
        out.result({ ok: true, id: sid, started: { workflowId: a.workflowId, runId: a.firstExecutionRunId, uiUrl: url }, skipped: false }, [
          `triggered ${sid}: started ${d.action.workflowType} ${a.workflowId}`,
          ...(url ? [`  watch: ${url}`] : []),
        ]);
        return 0;
      }
      if (d.info.numActionsSkippedOverlap > before.info.numActionsSkippedOverlap) {
        const running = d.info.runningActions.map((r) => r.workflow.workflowId);
        out.result({ ok: true, id: sid, started: null, skipped: true, running }, [`triggered ${sid}: skipped, its previous run is still going (${running.join(', ') || 'see lifeboat schedule ls'}); overlap policy SKIP`]);
        return 0;
      }
    }
    out.result({ ok: true, id: sid, started: null, skipped: false }, [`triggered ${sid}; no run showed within ${o.waitSeconds ?? 15} s: see 'lifeboat schedule ls' or ${schedulesUrl(config, sid) ?? 'the Web UI'}`]);
    return 0;
  } finally {
    await t.close();
  }
}
