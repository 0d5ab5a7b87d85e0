import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { HookInfo } from '../domain/plan';
import { PERMANENT_TYPES } from '../errors';

/**
 * Named option presets. `quick`: metadata calls and short store calls.
 * `transfer`: dumps, restores and verifies that stream whole artifacts. Both
 * heartbeat every 5 s (src/activities/context.ts), so a worker that died is
 * noticed within 30 seconds and the activity is retried on another.
 *
 * Activities that touch a target's store run on that target's task queue
 * (`taskQueue:` in its config, e.g. a worker beside a database: `on(ref.taskQueue)`);
 * catalog work runs on the default one.
 */
const nonRetryableErrorTypes = [...PERMANENT_TYPES];

const QUICK: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes },
};

const TRANSFER: ActivityOptions = {
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', maximumInterval: '2 minutes', maximumAttempts: 10, nonRetryableErrorTypes },
};

export interface Proxies {
  quick: Activities;
  transfer: Activities;
}

const byQueue = new Map<string, Proxies>();

/** The activities as run by the worker of `taskQueue` (the workflow's own queue when undefined). */
export function on(taskQueue?: string): Proxies {
  const key = taskQueue ?? '';
  let p = byQueue.get(key);
  if (!p) {
    const q = taskQueue ? { taskQueue } : {};
    p = { quick: proxyActivities<Activities>({ ...QUICK, ...q }), transfer: proxyActivities<Activities>({ ...TRANSFER, ...q }) };
    byQueue.set(key, p);
  }
  return p;
}

export const { quick, transfer } = on();

/** How long past its own timeout a hook's activity may run (starting the process, reporting back). */
const HOOK_MARGIN_SECONDS = 60;

/**
 * A hook's own activity options: its configured timeout plus a margin, a
 * heartbeat so a dead worker is noticed, and exactly `retries` more attempts
 * (none by default: a failed migration is not re-run blindly).
 */
export function hookActivities(hook: HookInfo, taskQueue?: string): Activities {
  return proxyActivities<Activities>({
    startToCloseTimeout: `${hook.timeoutSeconds + HOOK_MARGIN_SECONDS} seconds`,
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: hook.retries + 1, nonRetryableErrorTypes },
    ...(taskQueue ? { taskQueue } : {}),
  });
}
