import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { Config } from '../config';
import { LineLogger, logOptions, routeProcessWarnings } from './logging';
import { freeLoopbackPort, instrumentActivities, LifeboatMetrics, serveMetrics, type MetricsEndpoint } from './metrics';

let runtimeInstalled = false;
let lineLogger: LineLogger | undefined;

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
  const logger = (lineLogger = new LineLogger(o));
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

/** Says that the worker is up, in the chosen log format and whatever the level (scripts wait for this line). */
export function announce(message: string, meta: Record<string, unknown> = {}): void {
  installRuntime();
  if (lineLogger) lineLogger.announce(message, meta);
  else Runtime.instance().logger.info(message, meta);
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
  // Listen first: a port that is taken then fails the start before the runtime exists.
  const m = serve ? new LifeboatMetrics(config) : undefined;
  const endpoint = m ? await serveMetrics(serve!, m) : undefined;
  const coreMetrics = serve ? `127.0.0.1:${await freeLoopbackPort()}` : undefined;
  // The SDK's exporter exists only if this call installed the runtime (it is once per process).
  const withCore = installRuntime({ coreMetrics });
  let activities = createActivities(config);
  if (m) {
    m.start(Runtime.instance().logger, serve!.refreshSeconds, withCore ? coreMetrics : undefined);
    activities = instrumentActivities(activities, m);
  }
  let connection: NativeConnection | undefined;
  try {
    connection = await NativeConnection.connect({ address: config.temporal.address });
    return { worker: await newWorker(config, connection, activities, opts.taskQueue), connection, ...(endpoint ? { metrics: endpoint } : {}) };
  } catch (err) {
    // Nothing may be left running: the runtime shuts down once its last connection closes.
    await connection?.close();
    await endpoint?.close();
    throw err;
  }
}

function newWorker(config: Config, connection: NativeConnection, activities: ReturnType<typeof createActivities>, taskQueue: string | undefined): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: taskQueue ?? config.temporal.taskQueue,
    workflowsPath: require.resolve('../workflows'),
    activities,
    // Let a dump or restore in progress finish (or be retried elsewhere) on shutdown.
    shutdownGraceTime: '10 seconds',
    // Progress (stage, bytes) reaches the server every few seconds, so `temporal workflow describe`
    // and the Web UI show where a long activity is; the default throttle would hold it back 24 s.
    maxHeartbeatThrottleInterval: '3 seconds',
  });
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
