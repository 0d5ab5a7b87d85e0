import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { PERMANENT_TYPES } from '../errors';

/**
 * The PITR activities as run by the worker of a target's task queue (the
 * worker beside the database: pgBackRest needs its data directory). Same
 * presets as the other workflows: `quick` for short calls, `transfer` for
 * backups, restores and recoveries that heartbeat their progress.
 */
const nonRetryableErrorTypes = [...PERMANENT_TYPES, 'OutsideWindow', 'PitrNotArchiving', 'RecoveryFailed'];

const QUICK: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes },
};

const TRANSFER: ActivityOptions = {
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', maximumInterval: '2 minutes', maximumAttempts: 10, nonRetryableErrorTypes },
};

export interface PitrProxies {
  quick: Activities;
  transfer: Activities;
}

const byQueue = new Map<string, PitrProxies>();

export function pitrOn(taskQueue?: string): PitrProxies {
  const key = taskQueue ?? '';
  let p = byQueue.get(key);
  if (!p) {
    const q = taskQueue ? { taskQueue } : {};
    p = { quick: proxyActivities<Activities>({ ...QUICK, ...q }), transfer: proxyActivities<Activities>({ ...TRANSFER, ...q }) };
    byQueue.set(key, p);
  }
  return p;
}
