import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineSignal,
  ParentClosePolicy,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import { quick } from './activities';
import { lockTags } from './visibility';

/**
 * One run at a time per target. A run holds a target by running a child
 * workflow with the fixed id `lock/<idPrefix>/<target>`: Temporal lets only
 * one execution with an id run, so a second holder cannot start. The lock ends
 * when its holder releases it, or, if the holder dies, with it (parent close
 * policy). The id prefix keeps two deployments sharing a namespace apart.
 */
export const releaseSignal = defineSignal('release');

export interface LockInput {
  target: string;
  holder: string;
  operation: string;
}

export async function targetLockWorkflow(_input: LockInput): Promise<void> {
  let released = false;
  setHandler(releaseSignal, () => {
    released = true;
  });
  // A holder that never releases (a bug) does not hold the target forever.
  await condition(() => released, '7 days');
}

export function lockId(idPrefix: string, target: string): string {
  return `lock/${idPrefix}/${target}`;
}

export interface Held {
  release(): Promise<void>;
  /** The target was busy at first: the run waited for it (what it read before may be stale). */
  waited: boolean;
}

/**
 * Takes the locks of `targets` (in name order, so two runs never wait on each
 * other crosswise). `waitSeconds` 0 refuses at once when a target is busy;
 * otherwise it retries every 15 s until then. A refusal names the run that
 * holds the target.
 */
export async function holdTargets(
  idPrefix: string,
  targets: string[],
  operation: string,
  waitSeconds: number,
  onWait?: (target: string, holder: string) => void,
): Promise<Held> {
  const handles: ChildWorkflowHandle<typeof targetLockWorkflow>[] = [];
  const release = async () => {
    // Wait until each lock has closed, not just been told to: the next run must find the target free.
    await CancellationScope.nonCancellable(() =>
      Promise.allSettled(
        handles.map(async (h) => {
          await h.signal(releaseSignal);
          await h.result();
        }),
      ),
    );
  };
  const deadline = Date.now() + waitSeconds * 1000;
  let waited = false;
  try {
    for (const target of [...new Set(targets)].sort()) {
      const id = lockId(idPrefix, target);
      for (;;) {
        try {
          // Out of the run's cancellation: a cancelled run keeps its lock until it has stopped what it
          // ran and started writers again (release(), or its end: the parent close policy).
          handles.push(
            await CancellationScope.nonCancellable(() => startChild(targetLockWorkflow, {
              workflowId: id,
              args: [{ target, holder: workflowInfo().workflowId, operation }],
              parentClosePolicy: ParentClosePolicy.TERMINATE,
              memo: { holder: workflowInfo().workflowId, operation },
              ...lockTags(target),
              staticSummary: `holds target ${target} for ${workflowInfo().workflowId}`,
            })),
          );
          break;
        } catch (err) {
          if ((err as Error).name !== 'WorkflowExecutionAlreadyStartedError') throw err;
          const holder = await quick.describeLock({ lockId: id });
          if (Date.now() >= deadline) {
            throw ApplicationFailure.nonRetryable(
              `target '${target}' is busy: ${holder.text}. ${operation === 'restore' ? 'Wait for it to finish, or cancel it, then restore again.' : 'This run waited and gave up; the next one will try again.'}`,
              'TargetBusy',
              { target, lockId: id, holder: holder.workflowId, url: holder.url },
            );
          }
          onWait?.(target, holder.text);
          waited = true;
          await sleep('15 seconds');
        }
      }
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { release, waited };
}
