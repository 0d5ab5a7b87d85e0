import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { temporal as proto } from '@temporalio/proto';
import { taskQueueOf, type Config } from '../config';
import { LifeboatError, messageOf } from '../errors';

export interface Temporal {
  client: Client;
  close(): Promise<void>;
}

export async function connect(config: Config): Promise<Temporal> {
  const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '10 seconds' }).catch((err: unknown) => {
    throw new LifeboatError('Unreachable', `cannot reach Temporal at ${config.temporal.address} (${messageOf(err)}); is the server up? (local stack: scripts/stack.sh up)`);
  });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}

/** The Web UI page of a run, for people to follow it. */
export function uiUrl(config: Config, workflowId: string, runId?: string): string | undefined {
  if (!config.temporal.uiUrl) return undefined;
  const base = `${config.temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${runId}/history` : base;
}

/** A poller counts as a live worker when it polled this recently: a worker re-polls at least every minute. */
const LIVE_POLLER_MS = 90_000;

/** Whether some worker polls `taskQueue` for `type` tasks (Temporal's task-queue description). */
export async function hasWorker(client: Client, namespace: string, taskQueue: string, type: 'workflow' | 'activity'): Promise<boolean> {
  const res = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue, kind: proto.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: type === 'workflow' ? proto.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : proto.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  const now = Date.now();
  return (res.pollers ?? []).some((p) => {
    const t = p.lastAccessTime;
    const ms = t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0;
    return now - ms < LIVE_POLLER_MS;
  });
}

/**
 * The task queues a run of `targets` needs served, and which of them no
 * worker polls: the config's queue (workflows and catalog activities) and
 * each target's own queue (its store's activities).
 */
export async function missingWorkers(client: Client, config: Config, targets: string[]): Promise<string[]> {
  const queue = config.temporal.taskQueue;
  const missing: string[] = [];
  if (!(await hasWorker(client, config.temporal.namespace, queue, 'workflow'))) missing.push(`'${queue}' (the default queue: lifeboat worker)`);
  const own = new Set(targets.map((t) => taskQueueOf(config, t)).filter((q) => q !== queue));
  for (const q of own) {
    if (!(await hasWorker(client, config.temporal.namespace, q, 'activity'))) {
      const served = targets.filter((t) => taskQueueOf(config, t) === q);
      missing.push(`'${q}' (targets ${served.join(', ')}: lifeboat worker --targets ${served.join(' ')} on their host)`);
    }
  }
  return missing;
}

export interface FailureInfo {
  type: string;
  message: string;
  details: unknown[];
}

/** What a failed workflow says: the innermost ApplicationFailure, by its type string. */
export function failureOf(err: unknown): FailureInfo {
  let cause: unknown = err instanceof WorkflowFailedError ? err.cause : err;
  while (cause instanceof TemporalFailure && !(cause instanceof ApplicationFailure) && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure) return { type: cause.type ?? 'Error', message: cause.message, details: cause.details ? [...cause.details] : [] };
  const type = (cause as { type?: string })?.type ?? (cause as Error)?.name ?? 'Error';
  return { type, message: messageOf(cause), details: [] };
}

export async function resultOf<T>(handle: WorkflowHandle): Promise<{ ok: true; value: T } | { ok: false; failure: FailureInfo }> {
  try {
    return { ok: true, value: (await handle.result()) as T };
  } catch (err) {
    return { ok: false, failure: failureOf(err) };
  }
}
