import { WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import type { Config } from '../config';
import { SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import { LifeboatError } from '../errors';
import { createWorker, queuesToServe } from '../worker';
import { connect, missingWorkers, resultOf, uiUrl, type FailureInfo, type Temporal } from './client';
import { EXIT } from './exit';
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

export function searchAttributes(config: Config, tags: RunTags): SearchAttributePair[] {
  if (!config.temporal.searchAttributes) return [];
  const names = tags.targets.length ? tags.targets : [...config.targets.keys()];
  const kinds = [...new Set(names.map((t) => config.targets.get(t)?.kind ?? 'unknown'))];
  return [
    { key: defineSearchAttributeKey(SEARCH_ATTRIBUTES.operation, SearchAttributeType.KEYWORD), value: tags.operation },
    { key: defineSearchAttributeKey(SEARCH_ATTRIBUTES.target, SearchAttributeType.KEYWORD_LIST), value: names },
    { key: defineSearchAttributeKey(SEARCH_ATTRIBUTES.kind, SearchAttributeType.KEYWORD_LIST), value: kinds },
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

/** How long --with-worker may take to hand its run back on Ctrl-C or SIGTERM before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 15_000;

/**
 * Starts a workflow by name, says where to watch it, and waits for its result.
 * Never hangs: without a worker on the task queue nothing is started and the
 * CLI says so; Ctrl-C and SIGTERM say that the run goes on and how to follow
 * or cancel it (with --with-worker, the in-process worker shuts down first and
 * the run waits for the next worker).
 */
export async function runWorkflow<T>(config: Config, out: Output, type: string, workflowId: string, input: unknown, opts: RunOptions & { tags?: RunTags }): Promise<RunOutcome<T>> {
  const tags = opts.tags ?? { operation: type.replace(/Workflow$/, ''), targets: [] };
  const t = await connect(config);
  const workers: Array<Awaited<ReturnType<typeof createWorker>>> = [];
  let running: Promise<unknown> | undefined;
  let stopFollowing: (() => Promise<void>) | undefined;
  let handle: WorkflowHandleWithFirstExecutionRunId | undefined;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => void interrupted(sig);

  const interrupted = async (sig: 'SIGINT' | 'SIGTERM') => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    setTimeout(() => process.exit(sig === 'SIGINT' ? EXIT.interrupted : EXIT.terminated), SHUTDOWN_DEADLINE_MS).unref();
    await stopFollowing?.().catch(() => undefined);
    const url = handle ? uiUrl(config, workflowId, handle.firstExecutionRunId) : undefined;
    const lines = [`\n${sig === 'SIGINT' ? 'interrupted' : 'terminated'}: stopped waiting for ${workflowId}`];
    if (workers.length) {
      // Hand the run back: activities in flight are cancelled and retried by the next worker; nothing is lost.
      for (const w of workers) stopWorker(w);
      await Promise.race([running, new Promise((r) => setTimeout(r, SHUTDOWN_DEADLINE_MS - 2000))]).catch(() => undefined);
      lines.push(`  the run is not cancelled: it waits for a worker and goes on when one starts (lifeboat worker)`);
    } else if (handle) {
      lines.push(`  the run goes on in the worker`);
    }
    if (handle) {
      lines.push(`  follow it: ${url ?? `temporal workflow describe --workflow-id ${workflowId}`}`);
      lines.push(`  cancel it: lifeboat cancel ${workflowId}`);
    }
    process.stderr.write(`${lines.join('\n')}\n`);
    for (const w of workers) await w.connection.close().catch(() => undefined);
    await t.close().catch(() => undefined);
    process.exit(sig === 'SIGINT' ? EXIT.interrupted : EXIT.terminated);
  };

  try {
    if (opts.withWorker) {
      // The default queue, and the own queue of every target of the run (a worker beside a store, here in-process).
      const queues = queuesToServe(config, { targets: tags.targets.length ? tags.targets : [...config.targets.keys()] });
      if (!queues.some((q) => !q.activitiesOnly)) queues.unshift({ taskQueue: config.temporal.taskQueue, activitiesOnly: false });
      for (const q of queues) workers.push(await createWorker(config, q));
      running = Promise.all(workers.map((w) => w.worker.run()));
      running.catch(() => undefined);
    } else {
      await requireWorkers(t, config, tags.targets);
    }
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      handle = await t.client.workflow.start(type, {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        args: [input],
        // The same backup may be restored again once the last run closed; never while it runs.
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        typedSearchAttributes: searchAttributes(config, tags),
        staticSummary: `lifeboat ${tags.operation} ${tags.targets.join(' ') || 'all targets'}`,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        const url = uiUrl(config, workflowId);
        throw new LifeboatError('TargetBusy', `${workflowId} is already running${url ? ` (${url})` : ''}: wait for it, follow it, or cancel it (lifeboat cancel ${workflowId})`);
      }
      throw err;
    }
    const url = uiUrl(config, workflowId, handle.firstExecutionRunId);
    out.say(`started ${type} ${workflowId}${url ? `\n  watch: ${url}` : ''}`);
    stopFollowing = followProgress(handle, out.json, { client: t.client, config, targets: tags.targets, noWorkerCheck: workers.length > 0 });
    const r = await resultOf<T>(handle);
    await stopFollowing();
    return { workflowId, runId: handle.firstExecutionRunId, uiUrl: url, ...(r.ok ? { ok: true, value: r.value } : { ok: false, failure: r.failure }) };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const w of workers) stopWorker(w);
    await running?.catch(() => undefined);
    for (const w of workers) await w.connection.close().catch(() => undefined);
    await t.close().catch(() => undefined);
  }
}

/** Asks a worker to shut down; one that is already draining or stopped is left to it. */
function stopWorker(w: Awaited<ReturnType<typeof createWorker>>): void {
  if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
}

/** Refuses to start a run that no worker would pick up, naming the queue and how to serve it. */
async function requireWorkers(t: Temporal, config: Config, targets: string[]): Promise<void> {
  const names = targets.length ? targets : [...config.targets.keys()];
  const missing = await missingWorkers(t.client, config, names);
  if (missing.length) {
    throw new LifeboatError(
      'NoWorker',
      `no worker polls task queue ${missing.join(' nor ')} at ${config.temporal.address}; nothing was started. Start one with 'lifeboat worker', or run this command with --with-worker`,
    );
  }
}
