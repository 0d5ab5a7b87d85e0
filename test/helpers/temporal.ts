import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { randomBytes } from 'node:crypto';
import type { Config } from '../../src/config';
import { createWorker } from '../../src/worker';

export interface Harness {
  client: Client;
  taskQueue: string;
  /** Starts a workflow on the harness's task queue under a fresh id. */
  start<T>(type: string, input: unknown): Promise<{ handle: WorkflowHandle; result: Promise<T> }>;
  /** Starts a workflow and waits for its result. */
  run<T>(type: string, input: unknown): Promise<T>;
  stop(): Promise<void>;
}

/** A real worker on its own task queue against the stack's Temporal server, and a client. */
export async function startHarness(config: Config): Promise<Harness> {
  const { worker, connection } = await createWorker(config);
  const running = worker.run();
  const clientConnection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  const taskQueue = config.temporal.taskQueue;
  const started: WorkflowHandle[] = [];
  const start = async <T>(type: string, input: unknown) => {
    const handle = await client.workflow.start(type, { taskQueue, workflowId: `${type}/${taskQueue}/${randomBytes(3).toString('hex')}`, args: [input] });
    started.push(handle);
    const result = handle.result() as Promise<T>;
    result.catch(() => undefined); // a run ended by stop() is not an unhandled rejection
    return { handle, result };
  };
  return {
    client,
    taskQueue,
    start,
    run: async <T>(type: string, input: unknown) => (await start<T>(type, input)).result,
    async stop() {
      // A run still going when its test ends (a timeout, a failed expectation) would hold its target's
      // lock for whoever comes next: end it, and with it (parent close policy) its lock.
      await Promise.all(started.map((w) => w.terminate('the test harness stopped').catch(() => undefined)));
      worker.shutdown();
      await running;
      await connection.close();
      await clientConnection.close();
    },
  };
}

/** The failure a workflow ended with: its ApplicationFailure's type and message. */
export async function failureOf(p: Promise<unknown>): Promise<{ type?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      let cause: unknown = err.cause;
      while (cause && (cause as { cause?: unknown }).cause && !(cause as { type?: string }).type) cause = (cause as { cause?: unknown }).cause;
      return { type: (cause as { type?: string }).type, message: (cause as Error).message };
    }
    throw err;
  }
  throw new Error('expected the workflow to fail, but it succeeded');
}

/** The activities a run scheduled, in order: each one's type and its (decoded) input. */
export async function scheduledActivities(handle: WorkflowHandle): Promise<Array<{ type: string; input: Record<string, unknown> }>> {
  const { events } = await handle.fetchHistory();
  return (events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes)
    .filter((a) => a !== null && a !== undefined)
    .map((a) => {
      const first = a.input?.payloads?.[0];
      return { type: a.activityType!.name!, input: first ? defaultPayloadConverter.fromPayload<Record<string, unknown>>(first) : {} };
    });
}

/** The attempt number of every activity task a run started. */
export async function activityAttempts(handle: WorkflowHandle): Promise<number[]> {
  const { events } = await handle.fetchHistory();
  return (events ?? []).filter((e) => e.activityTaskStartedEventAttributes).map((e) => Number(e.activityTaskStartedEventAttributes!.attempt));
}
