import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { Config } from '../config';
import { LineLogger, logOptions, routeProcessWarnings } from './logging';
import { freeLoopbackPort, instrumentActivities, LifeboatMetrics, serveMetrics, type MetricsEndpoint } from './metrics';

let runtimeInstalled = false;

/**
 * Temporal's runtime, once per process: every log event (the SDK's, its
 * native core's, lifeboat's activity and workflow loggers) one line in the
 * chosen format and level (src/worker/logging.ts); with `coreMetrics`, the
 * SDK's Prometheus exporter on that address.
 */
export function installRuntime(opts: { coreMetrics?: string } = {}): boolean {
  if (runtimeInstalled) return false;
  runtimeInstalled = true;
  const o = logOptions();
  const logger = new LineLogger(o);
  Runtime.install({
    logger,
    telemetryOptions: {
      logging: { filter: { core: o.level, other: 'ERROR' }, forward: {} },
      ...(opts.coreMetrics ? { metrics: { prometheus: { bindAddress: opts.coreMetrics } } } : {}),
    },
  });
  routeProcessWarnings(logger);
  return true;
}

/** The runtime's logger: what a worker process says goes through it, in the chosen format. */
export function workerLogger() {
  installRuntime();
  return Runtime.instance().logger;
}

export interface RunningWorker {
  worker: Worker;
  connection: NativeConnection;
  /** With `metrics`: where GET /metrics answers. */
  metrics?: MetricsEndpoint;
}

/**
 * Builds a worker for the config's task queue with lifeboat's workflows and
 * activities. `metrics` (the `lifeboat worker` command) serves the config's
 * `metrics:` endpoint; a worker inside another command never does, so it
 * cannot collide with a running worker's port.
 */
export async function createWorker(config: Config, opts: { taskQueue?: string; metrics?: boolean } = {}): Promise<RunningWorker> {
  const serve = opts.metrics && config.metrics ? config.metrics : undefined;
  const coreMetrics = serve ? `127.0.0.1:${await freeLoopbackPort()}` : undefined;
  // The SDK's exporter exists only if this call installed the runtime (it is once per process).
  const withCore = installRuntime({ coreMetrics });
  let activities = createActivities(config);
  let endpoint: MetricsEndpoint | undefined;
  if (serve) {
    const m = new LifeboatMetrics(config, Runtime.instance().logger);
    activities = instrumentActivities(activities, m);
    endpoint = await serveMetrics(serve, m, withCore ? coreMetrics : undefined);
  }
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? config.temporal.taskQueue,
    workflowsPath: require.resolve('../workflows'),
    activities,
    // Let a dump or restore in progress finish (or be retried elsewhere) on shutdown.
    shutdownGraceTime: '10 seconds',
    // Progress (stage, bytes) reaches the server every few seconds, so `temporal workflow describe`
    // and the Web UI show where a long activity is; the default throttle would hold it back 24 s.
    maxHeartbeatThrottleInterval: '3 seconds',
  });
  return { worker, connection, ...(endpoint ? { metrics: endpoint } : {}) };
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
