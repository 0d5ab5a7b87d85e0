/**
 * Custom search attributes (all Keyword) that lifeboat runs carry, so the Web
 * UI and `temporal workflow list --query` can find them. The local stack
 * registers them; on another Temporal: `temporal operator search-attribute
 * create --name LifeboatTarget --type Keyword` (and the others).
 */
export const SEARCH_ATTRIBUTES = {
  target: 'LifeboatTarget',
  kind: 'LifeboatKind',
  operation: 'LifeboatOperation',
  outcome: 'LifeboatOutcome',
} as const;
