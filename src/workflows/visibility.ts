import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { TargetRef } from '../domain/plan';
import { LOCK_OPERATION, SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import { asCancellation, cancelledRun } from './cancel';

const operationKey = defineSearchAttributeKey(SEARCH_ATTRIBUTES.operation, SearchAttributeType.KEYWORD);
const outcomeKey = defineSearchAttributeKey(SEARCH_ATTRIBUTES.outcome, SearchAttributeType.KEYWORD);
const targetKey = defineSearchAttributeKey(SEARCH_ATTRIBUTES.target, SearchAttributeType.KEYWORD_LIST);
const kindKey = defineSearchAttributeKey(SEARCH_ATTRIBUTES.kind, SearchAttributeType.KEYWORD_LIST);

const tagged = () => workflowInfo().typedSearchAttributes.get(operationKey) !== undefined;

/**
 * Tags the run with lifeboat's search attributes (operation, one target and
 * kind value per target), whoever started it: the CLI, a schedule, or the stock
 * `temporal` CLI without any. Only where the deployment registered them
 * (config `temporal.searchAttributes`), since an unknown attribute would fail
 * the workflow task. Leaves the operation the starter set alone; targets and
 * kinds are set to what the run really covers.
 */
export function tagRun(enabled: boolean, operation: string, refs: TargetRef[]): void {
  if (!enabled) return;
  const sa = workflowInfo().typedSearchAttributes;
  const pairs: SearchAttributePair[] = [];
  if (sa.get(operationKey) === undefined) pairs.push({ key: operationKey, value: operation });
  const targets = [...new Set(refs.map((r) => r.target))];
  const kinds = [...new Set(refs.map((r) => r.kind))];
  if (targets.length && !same(sa.get(targetKey), targets)) pairs.push({ key: targetKey, value: targets });
  if (kinds.length && !same(sa.get(kindKey), kinds)) pairs.push({ key: kindKey, value: kinds });
  if (pairs.length) upsertSearchAttributes(pairs);
}

function same(a: string[] | undefined, b: string[]): boolean {
  return !!a && a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The search attributes of a lock run: visibly secondary (`LifeboatOperation = "lock"`), when the parent is tagged. */
export function lockTags(target: string): { typedSearchAttributes?: SearchAttributePair[] } {
  if (!tagged()) return {};
  return { typedSearchAttributes: [{ key: operationKey, value: LOCK_OPERATION }, { key: targetKey, value: [target] }] };
}

/**
 * Runs a workflow body and records its outcome (success, failed, cancelled)
 * as the LifeboatOutcome search attribute, on every run that is tagged.
 */
export async function withOutcome<T>(body: () => Promise<T>): Promise<T> {
  const mark = (outcome: string) => {
    if (tagged()) upsertSearchAttributes([{ key: outcomeKey, value: outcome }]);
  };
  try {
    const result = await body();
    mark('success');
    return result;
  } catch (err) {
    const cancelled = cancelledRun(err);
    mark(cancelled ? 'cancelled' : 'failed');
    throw cancelled ? asCancellation(err) : err;
  }
}
