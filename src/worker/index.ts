import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { workflowCode } from './bundle';
import { taskQueueOf, type Config } from '../config';
import { LineLogger, logOptions, routeProcessWarnings } from './logging';
import { freeLoopbackPort, instrumentActivities, LifeboatMetrics, serveMetrics, type MetricsEndpoint } from './metrics';

let runtimeInstalled = false;
let lineLogger: LineLogger | undefined;

/**
 * Temporal's runtime, once per process: every log event (the SDK's, its
 * native core's, lifeboat's activity and workflow loggers) one line in the
 * chosen format and level (src/worker/logging.ts); with `coreMetrics`, the
 * SDK's Prometheus exporter on that address. The runtime installs no signal
 * handlers: lifeboat's CLI decides what Ctrl-C and SIGTERM do (src/cli/run.ts,
 * the worker command). Returns whether this call installed it.
 */
export function installRuntime(opts: { coreMetrics?: string } = {}): boolean {
  if (runtimeInstalled) return false;
  runtimeInstalled = true;
  const o = logOptions();
  const logger = (lineLogger = new LineLogger(o));
  Runtime.install({
    logger,
    shutdownSignals: [],
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

/** Says that the worker is up (or stopping), in the chosen log format and whatever the level: scripts wait for it. */
export function announce(message: string, meta: Record<string, unknown> = {}): void {
  installRuntime();
  if (lineLogger) lineLogger.announce(message, meta);
  else Runtime.instance().logger.info(message, meta);
}

export interface WorkerMetrics {
  metrics: LifeboatMetrics;
  endpoint: MetricsEndpoint;
}

/**
 * `lifeboat worker`'s Prometheus endpoint (config `metrics:`), one per
 * process, whatever number of queues it serves; undefined when the config has
 * none. Call it before any worker is created: the port is bound first (a
 * port that is taken fails the start before anything runs), then the runtime
 * is installed with the SDK's own exporter, whose metrics the endpoint
 * appends. A worker inside another command never serves it, so it cannot
 * collide with a running worker's port.
 */
export async function serveWorkerMetrics(config: Config): Promise<WorkerMetrics | undefined> {
  if (!config.metrics) return undefined;
  const metrics = new LifeboatMetrics(config);
  const endpoint = await serveMetrics(config.metrics, metrics);
  const coreMetrics = `127.0.0.1:${await freeLoopbackPort()}`;
  // The SDK's exporter exists only if this call installed the runtime (it is once per process).
  const withCore = installRuntime({ coreMetrics });
  metrics.start(Runtime.instance().logger, config.metrics.refreshSeconds, withCore ? coreMetrics : undefined);
  return { metrics, endpoint };
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
  /** The process's metrics (serveWorkerMetrics): told when a backup or drill this worker ran finishes. */
  metrics?: LifeboatMetrics;
}

/** Builds a worker for a task queue with lifeboat's workflows (unless activitiesOnly) and activities. */
export async function createWorker(config: Config, opts: WorkerOptions = {}): Promise<RunningWorker> {
  installRuntime();
  const activities = opts.metrics ? instrumentActivities(createActivities(config), opts.metrics) : createActivities(config);
  let connection: NativeConnection | undefined;
  try {
    connection = await NativeConnection.connect({ address: config.temporal.address });
    return { worker: await newWorker(config, connection, activities, opts), connection };
  } catch (err) {
    // Nothing may be left running: the runtime shuts down once its last connection closes.
    await connection?.close();
    throw err;
  }
}

function newWorker(config: Config, connection: NativeConnection, activities: ReturnType<typeof createActivities>, opts: WorkerOptions): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? config.temporal.taskQueue,
    ...(opts.activitiesOnly ? {} : workflowCode()),
    activities,
    // On shutdown, activities in flight get this long, then are cancelled: the next worker retries them.
    shutdownGraceTime: '5 seconds',
    // Progress (stage, bytes) reaches the server within a second, so `temporal workflow describe`,
    // the Web UI and `--watch` show where a long activity is, even a stage of a few seconds; the
    // default throttle would hold it back 24 s. One small RPC per second per running activity.
    maxHeartbeatThrottleInterval: '1 second',
  });
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
