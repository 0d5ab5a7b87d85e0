import { WorkflowIdReusePolicy } from '@temporalio/client';
import type { Config } from '../config';
import { withWorker } from '../worker';
import { connect, resultOf, uiUrl, type FailureInfo } from './client';
import type { Output } from './output';

export interface RunOptions {
  /** Run a worker inside this process for the duration (the local stack's one-command path). */
  withWorker?: boolean;
}

export interface RunOutcome<T> {
  workflowId: string;
  runId: string;
  uiUrl?: string;
  ok: boolean;
  value?: T;
  failure?: FailureInfo;
}

/** Starts a workflow by name, says where to watch it, and waits for its result. */
export async function runWorkflow<T>(config: Config, out: Output, type: string, workflowId: string, input: unknown, opts: RunOptions): Promise<RunOutcome<T>> {
  const job = async (): Promise<RunOutcome<T>> => {
    const t = await connect(config);
    try {
      const handle = await t.client.workflow.start(type, {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        args: [input],
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      });
      const url = uiUrl(config, workflowId, handle.firstExecutionRunId);
      out.say(`started ${type} ${workflowId}${url ? `\n  watch: ${url}` : ''}`);
      const r = await resultOf<T>(handle);
      return { workflowId, runId: handle.firstExecutionRunId, uiUrl: url, ...(r.ok ? { ok: true, value: r.value } : { ok: false, failure: r.failure }) };
    } finally {
      await t.close();
    }
  };
  return opts.withWorker ? withWorker(config, job) : job();
}
