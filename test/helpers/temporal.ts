import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { Config } from '../../src/config';
import { createWorker } from '../../src/worker';

export interface Harness {
  client: Client;
  taskQueue: string;
  stop(): Promise<void>;
}

/** A real worker on its own task queue against the stack's Temporal server, and a client. */
export async function startHarness(config: Config): Promise<Harness> {
  const { worker, connection } = await createWorker(config);
  const running = worker.run();
  const clientConnection = await Connection.connect({ address: config.temporal.address });
  return {
    client: new Client({ connection: clientConnection, namespace: config.temporal.namespace }),
    taskQueue: config.temporal.taskQueue,
    async stop() {
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
