import { WorkflowIdReusePolicy } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import { SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import type { Config } from '../config';
import { withWorker } from '../worker';
import { connect, resultOf, uiUrl, type FailureInfo } from './client';
import type { Output } from './output';
import { followProgress } from './progress';

export interface RunOptions {
  /** Run a worker inside this process for the duration (the local stack's one-command path). */
  withWorker?: boolean;
}

/** What the run is about, for the search attributes the Web UI filters on. */
export interface RunTags {
  operation: string;
  targets: string[];
}

function searchAttributes(config: Config, tags: RunTags): SearchAttributePair[] {
  if (!config.temporal.searchAttributes) return [];
  const names = tags.targets.length ? tags.targets : [...config.targets.keys()];
  const kinds = [...new Set(names.map((t) => config.targets.get(t)?.kind ?? 'unknown'))];
  const key = (n: string) => defineSearchAttributeKey(n, SearchAttributeType.KEYWORD);
  return [
    { key: key(SEARCH_ATTRIBUTES.operation), value: tags.operation },
    { key: key(SEARCH_ATTRIBUTES.target), value: names.join(',') },
    { key: key(SEARCH_ATTRIBUTES.kind), value: kinds.join(',') },
  ];
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
export async function runWorkflow<T>(config: Config, out: Output, type: string, workflowId: string, input: unknown, opts: RunOptions & { tags?: RunTags }): Promise<RunOutcome<T>> {
  const job = async (): Promise<RunOutcome<T>> => {
    const t = await connect(config);
    try {
      const handle = await t.client.workflow.start(type, {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        args: [input],
        // The same backup may be restored again once the last run closed; never while it runs.
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        typedSearchAttributes: searchAttributes(config, opts.tags ?? { operation: type.replace(/Workflow$/, ''), targets: [] }),
      });
      const url = uiUrl(config, workflowId, handle.firstExecutionRunId);
      out.say(`started ${type} ${workflowId}${url ? `\n  watch: ${url}` : ''}`);
      const stop = followProgress(handle, out.json);
      const r = await resultOf<T>(handle).finally(stop);
      return { workflowId, runId: handle.firstExecutionRunId, uiUrl: url, ...(r.ok ? { ok: true, value: r.value } : { ok: false, failure: r.failure }) };
    } finally {
      await t.close();
    }
  };
  return opts.withWorker ? withWorker(config, job) : job();
}
