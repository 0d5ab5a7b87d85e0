import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { PERMANENT_TYPES } from '../errors';

/**
 * Named option presets. `quick`: metadata calls. `transfer`: dumps, restores
 * and verifies that stream whole artifacts: long, heartbeating, so a dead
 * worker is noticed within 30 seconds and the activity is retried on another.
 */
const nonRetryableErrorTypes = [...PERMANENT_TYPES];

export const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes },
});

export const transfer = proxyActivities<Activities>({
  startToCloseTimeout: '12 hours',
  // Activities heartbeat every 5 s: a worker that died is noticed within 30 s and the item retried elsewhere.
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', maximumInterval: '2 minutes', maximumAttempts: 10, nonRetryableErrorTypes },
});
