/**
 * Custom search attributes that lifeboat runs carry, so the Web UI and
 * `temporal workflow list --query` find them: `LifeboatTarget` and
 * `LifeboatKind` are KeywordLists (one value per target, so
 * `LifeboatTarget = "app-pg"` finds multi-target runs too), the others
 * Keywords. The local stack registers them; on another Temporal:
 * `temporal operator search-attribute create --name LifeboatTarget --type KeywordList`
 * (and the others, docs/temporal.md). Lock runs carry `LifeboatOperation = "lock"`.
 */
export const SEARCH_ATTRIBUTES = {
  target: 'LifeboatTarget',
  kind: 'LifeboatKind',
  operation: 'LifeboatOperation',
  outcome: 'LifeboatOutcome',
} as const;

export const SEARCH_ATTRIBUTE_TYPES = {
  LifeboatTarget: 'KeywordList',
  LifeboatKind: 'KeywordList',
  LifeboatOperation: 'Keyword',
  LifeboatOutcome: 'Keyword',
} as const;

/** The operation value of lock runs, so lists can leave them out: `LifeboatOperation != "lock"`. */
export const LOCK_OPERATION = 'lock';
