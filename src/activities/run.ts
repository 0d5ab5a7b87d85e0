import { Context } from '@temporalio/activity';
import { targetOf } from '../config';
import type { Hook } from '../config/hooks';
import type { HookContext, HookInfo, HookPhase, RunInfo } from '../domain/plan';
import { DEFAULT_SCHEDULES } from '../domain/schedules';
import { LifeboatError } from '../errors';
import { openStore } from '../stores';
import { hookName, runHook } from '../stores/hooks';
import type { Deps } from './deps';
import { inActivity } from './context';

/** What a hook is told, as environment variables (docs/hooks.md). */
export function hookEnv(target: string, kind: string, phase: HookPhase, c: HookContext, attempt: number): Record<string, string> {
  const env: Record<string, string> = {
    LIFEBOAT_TARGET: target,
    LIFEBOAT_KIND: kind,
    LIFEBOAT_PHASE: phase,
    LIFEBOAT_OPERATION: c.operation,
    LIFEBOAT_MODE: c.mode,
    LIFEBOAT_BACKUP_ID: c.backupId,
    LIFEBOAT_WORKFLOW_ID: c.workflowId,
    LIFEBOAT_ATTEMPT: String(attempt),
    LIFEBOAT_ITEMS: c.items.map((i) => i.name).join(' '),
    LIFEBOAT_RESTORED_INTO: c.items.map((i) => i.into).join(' '),
  };
  if (c.items.length === 1) {
    env.LIFEBOAT_ITEM = c.items[0]!.name;
    env.LIFEBOAT_INTO = c.items[0]!.into;
  }
  if (c.outcome) env.LIFEBOAT_OUTCOME = c.outcome;
  return env;
}

/** The activities about a run itself: its targets and where they run, hooks, locks. */
export function runActivities(d: Deps) {
  const hooksOf = (target: string, phase: HookPhase): Hook[] => targetOf(d.config, target).hooks?.[phase] ?? [];
  return {
    /**
     * The targets to work on (all configured ones when none are named), with
     * their kinds and task queues, and what the workflows need of the config.
     */
    async describeRun(input: { targets?: string[] }): Promise<RunInfo> {
      return inActivity(null, async () => {
        const names = input.targets?.length ? input.targets : [...d.config.targets.keys()];
        const targets = names.map((target) => {
          const t = targetOf(d.config, target);
          return { target, kind: openStore(d.config, target).kind, ...(t.taskQueue ? { taskQueue: t.taskQueue } : {}), heartbeatTimeoutSeconds: d.config.temporal.heartbeatTimeoutSeconds };
        });
        return { targets, idPrefix: (d.config.schedules ?? DEFAULT_SCHEDULES).idPrefix, searchAttributes: d.config.temporal.searchAttributes };
      });
    },

    /** The hooks of one phase of a target, as the workflow schedules them: names and limits only. */
    async describeHooks(input: { target: string; phase: HookPhase }): Promise<HookInfo[]> {
      return inActivity(null, async () =>
        hooksOf(input.target, input.phase).map((h, index) => ({ phase: input.phase, index, name: hookName(h), timeoutSeconds: h.timeoutSeconds, retries: h.retries })),
      );
    },

    /** Runs one hook with the run's context (LIFEBOAT_* variables). Heartbeats while it runs. */
    async runHook(input: { target: string; phase: HookPhase; index: number; context: HookContext }): Promise<{ output: string }> {
      return inActivity(null, async (ctx) => {
        const hook = hooksOf(input.target, input.phase)[input.index];
        if (!hook) throw new LifeboatError('ConfigError', `target '${input.target}' has no ${input.phase} hook ${input.index + 1} any more (the config changed during the run)`);
        const kind = targetOf(d.config, input.target).kind;
        const env = hookEnv(input.target, kind, input.phase, input.context, Context.current().info.attempt);
        ctx.progress({ stage: input.phase, item: hookName(hook) });
        const output = await runHook(hook, env, ctx.signal, (tail) => ctx.progress({ stage: input.phase, item: hookName(hook), detail: tail }));
        if (output) ctx.log.info(`hook ${input.phase} ${hookName(hook)} of ${input.target}`, { output });
        return { output };
      });
    },

    /** Who holds a target's lock: the holding run's id and Web UI link, for the TargetBusy message. */
    async describeLock(input: { lockId: string }): Promise<{ workflowId?: string; url?: string; text: string }> {
      return inActivity(null, async () => {
        try {
          const desc = await Context.current().client.workflow.getHandle(input.lockId).describe();
          const memo = (desc.memo ?? {}) as { holder?: string; operation?: string };
          const holder = memo.holder;
          const ui = d.config.temporal.uiUrl;
          const url = holder && ui ? `${ui}/namespaces/${encodeURIComponent(d.config.temporal.namespace)}/workflows/${encodeURIComponent(holder)}` : undefined;
          return { workflowId: holder, url, text: `the ${memo.operation ?? 'run'} ${holder ?? '(unknown)'} holds it (lock ${input.lockId})${url ? `: ${url}` : ''}` };
        } catch {
          return { text: `another run holds it (lock ${input.lockId})` };
        }
      });
    },
  };
}
