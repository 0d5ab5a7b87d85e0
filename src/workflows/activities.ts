import { ActivityCancellationType, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { HookInfo, TargetRef } from '../domain/plan';
import { PERMANENT_TYPES } from '../errors';

/**
 * Named option presets. `quick`: metadata calls and short store calls.
 * `transfer`: dumps, restores and verifies that stream whole artifacts. Both
 * heartbeat every 5 s at most (src/activities/context.ts), so a worker that
 * died is noticed within the heartbeat timeout (temporal.heartbeatTimeoutSeconds,
 * 30 s by default) and the activity is retried on another.
 *
 * Activities that touch a target's store run on that target's task queue
 * (`taskQueue:` in its config, e.g. a worker beside a database: `on(ref)`),
 * with the heartbeat timeout its ref carries; catalog work runs on the default one.
 */
const nonRetryableErrorTypes = [...PERMANENT_TYPES];

const HEARTBEAT_TIMEOUT_SECONDS = 30;

/**
 * A cancelled run goes on (starts writers again, releases its target's lock,
 * ends) only once the activity it cancelled has stopped: its tool or hook
 * killed and gone. The SDK's default would go on at once, while a pg_restore
 * or a stop-writers hook still runs for as long as the cancel takes to reach
 * it (its next heartbeat). A worker that died cannot confirm: the heartbeat
 * timeout ends the wait.
 */
const cancellationType = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

const QUICK: ActivityOptions = {
  cancellationType,
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: `${HEARTBEAT_TIMEOUT_SECONDS} seconds`,
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes },
};

const TRANSFER: ActivityOptions = {
  cancellationType,
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: `${HEARTBEAT_TIMEOUT_SECONDS} seconds`,
  retry: { initialInterval: '5 seconds', maximumInterval: '2 minutes', maximumAttempts: 10, nonRetryableErrorTypes },
};

export interface Proxies {
  quick: Activities;
  transfer: Activities;
}

const byQueue = new Map<string, Proxies>();

/** Where a target's activities run: its task queue (the workflow's own when omitted) and its heartbeat timeout. */
export type Near = Pick<TargetRef, 'taskQueue' | 'heartbeatTimeoutSeconds'>;

function nearOptions(near: Near): ActivityOptions {
  return {
    ...(near.taskQueue ? { taskQueue: near.taskQueue } : {}),
    heartbeatTimeout: `${near.heartbeatTimeoutSeconds ?? HEARTBEAT_TIMEOUT_SECONDS} seconds`,
  };
}

/** The activities as run by the worker of a target (`describeRun`'s ref), or the workflow's own queue. */
export function on(near: Near = {}): Proxies {
  const key = `${near.taskQueue ?? ''}|${near.heartbeatTimeoutSeconds ?? ''}`;
  let p = byQueue.get(key);
  if (!p) {
    const o = nearOptions(near);
    p = { quick: proxyActivities<Activities>({ ...QUICK, ...o }), transfer: proxyActivities<Activities>({ ...TRANSFER, ...o }) };
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
export function hookActivities(hook: HookInfo, near: Near = {}): Activities {
  return proxyActivities<Activities>({
    cancellationType,
    startToCloseTimeout: `${hook.timeoutSeconds + HOOK_MARGIN_SECONDS} seconds`,
    retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: hook.retries + 1, nonRetryableErrorTypes },
    ...nearOptions(near),
  });
}
