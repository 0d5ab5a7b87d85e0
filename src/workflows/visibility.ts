import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { isCancellation, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { SEARCH_ATTRIBUTES } from '../domain/search-attributes';

const key = (name: string) => defineSearchAttributeKey(name, SearchAttributeType.KEYWORD);
const operationKey = key(SEARCH_ATTRIBUTES.operation);
const outcomeKey = key(SEARCH_ATTRIBUTES.outcome);

/**
 * Runs a workflow body and records its outcome (success, failed, cancelled)
 * as the LifeboatOutcome search attribute. Only runs started with lifeboat's
 * search attributes (by the CLI or a schedule, so the server has them
 * registered) are marked; a run started without them is left as it is.
 */
export async function withOutcome<T>(body: () => Promise<T>): Promise<T> {
  const mark = (outcome: string) => {
    if (workflowInfo().typedSearchAttributes.get(operationKey) !== undefined) upsertSearchAttributes([{ key: outcomeKey, value: outcome }]);
  };
  try {
    const result = await body();
    mark('success');
    return result;
  } catch (err) {
    mark(isCancellation(err) ? 'cancelled' : 'failed');
    throw err;
  }
}
