import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import type { Config } from '../config';
import { messageOf } from '../errors';

export interface Temporal {
  client: Client;
  close(): Promise<void>;
}

export async function connect(config: Config): Promise<Temporal> {
  const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '10 seconds' }).catch((err: unknown) => {
    throw new Error(`cannot reach Temporal at ${config.temporal.address} (${messageOf(err)}); is the server up? (local stack: scripts/stack.sh up)`);
  });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}

/** The Web UI page of a run, for people to follow it. */
export function uiUrl(config: Config, workflowId: string, runId?: string): string | undefined {
  if (!config.temporal.uiUrl) return undefined;
  const base = `${config.temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${runId}/history` : base;
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
