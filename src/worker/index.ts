import { NativeConnection, Runtime, DefaultLogger, Worker, type LogLevel } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { Config } from '../config';

let runtimeInstalled = false;

/** Temporal's own logs at WARN unless LIFEBOAT_LOG_LEVEL says otherwise; called once per process. */
export function installRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (process.env.LIFEBOAT_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  Runtime.install({ logger: new DefaultLogger(level) });
}

export interface RunningWorker {
  worker: Worker;
  connection: NativeConnection;
}

/** Builds a worker for the config's task queue with lifeboat's workflows and activities. */
export async function createWorker(config: Config, opts: { taskQueue?: string } = {}): Promise<RunningWorker> {
  installRuntime();
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? config.temporal.taskQueue,
    workflowsPath: require.resolve('../workflows'),
    activities: createActivities(config),
    // Let a dump or restore in progress finish (or be retried elsewhere) on shutdown.
    shutdownGraceTime: '10 seconds',
    // Progress (stage, bytes) reaches the server every few seconds, so `temporal workflow describe`
    // and the Web UI show where a long activity is; the default throttle would hold it back 24 s.
    maxHeartbeatThrottleInterval: '3 seconds',
  });
  return { worker, connection };
}

/** Runs a worker while `job` runs, then shuts it down cleanly. */
export async function withWorker<T>(config: Config, job: () => Promise<T>, opts: { taskQueue?: string } = {}): Promise<T> {
  const { worker, connection } = await createWorker(config, opts);
  try {
    return await worker.runUntil(job);
  } finally {
    await connection.close();
  }
}
