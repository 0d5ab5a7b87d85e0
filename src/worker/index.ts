import { NativeConnection, Runtime, DefaultLogger, Worker, type LogLevel } from '@temporalio/worker';
import { createActivities } from '../activities';
import { taskQueueOf, type Config } from '../config';

let runtimeInstalled = false;

/**
 * Temporal's own logs at WARN unless LIFEBOAT_LOG_LEVEL says otherwise; called
 * once per process. The runtime installs no signal handlers: lifeboat's CLI
 * decides what Ctrl-C and SIGTERM do (src/cli/run.ts, the worker command).
 */
export function installRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (process.env.LIFEBOAT_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  Runtime.install({ logger: new DefaultLogger(level), shutdownSignals: [] });
}

export interface RunningWorker {
  worker: Worker;
  connection: NativeConnection;
}

export interface WorkerOptions {
  /** The queue to poll (default: the config's). */
  taskQueue?: string;
  /** Activities only: a worker beside a store, on that target's queue, runs no workflows. */
  activitiesOnly?: boolean;
  /** Kept for callers that ask explicitly; the runtime never installs signal handlers. */
  withShutdownSignals?: boolean;
}

/** Builds a worker for a task queue with lifeboat's workflows (unless activitiesOnly) and activities. */
export async function createWorker(config: Config, opts: WorkerOptions = {}): Promise<RunningWorker> {
  installRuntime();
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? config.temporal.taskQueue,
    ...(opts.activitiesOnly ? {} : { workflowsPath: require.resolve('../workflows') }),
    activities: createActivities(config),
    // On shutdown, activities in flight get this long, then are cancelled: the next worker retries them.
    shutdownGraceTime: '5 seconds',
    // Progress (stage, bytes) reaches the server every few seconds, so `temporal workflow describe`
    // and the Web UI show where a long activity is; the default throttle would hold it back 24 s.
    maxHeartbeatThrottleInterval: '3 seconds',
  });
  return { worker, connection };
}

/**
 * The task queues a `lifeboat worker` serves: the config's (workflows and
 * every target without a queue of its own), or with `targets` those targets'
 * own queues (activities only), or an explicit `taskQueue`.
 */
export function queuesToServe(config: Config, o: { targets?: string[]; taskQueue?: string }): Array<{ taskQueue: string; activitiesOnly: boolean }> {
  if (o.taskQueue) return [{ taskQueue: o.taskQueue, activitiesOnly: o.taskQueue !== config.temporal.taskQueue }];
  if (!o.targets?.length) return [{ taskQueue: config.temporal.taskQueue, activitiesOnly: false }];
  const queues = [...new Set(o.targets.map((t) => taskQueueOf(config, t)))];
  return queues.map((q) => ({ taskQueue: q, activitiesOnly: q !== config.temporal.taskQueue }));
}

/** Runs a worker while `job` runs, then shuts it down cleanly. */
export async function withWorker<T>(config: Config, job: () => Promise<T>, opts: WorkerOptions = {}): Promise<T> {
  const { worker, connection } = await createWorker(config, opts);
  try {
    return await worker.runUntil(job);
  } finally {
    await connection.close();
  }
}
