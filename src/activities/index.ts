import type { Config } from '../config';
import { backupActivities } from './backup';
import { makeDeps } from './deps';
import { createPitrActivities } from './pitr';
import { pruneActivities } from './prune';
import { restoreActivities } from './restore';
import { runActivities } from './run';

/**
 * The activities, bound to the worker's config. Inputs are names and ids; each
 * activity resolves credentials itself, so no secret enters workflow history.
 */
export function createActivities(config: Config) {
  const d = makeDeps(config);
  return { ...runActivities(d), ...backupActivities(d), ...restoreActivities(d), ...pruneActivities(d), ...createPitrActivities(config) };
}

export type Activities = ReturnType<typeof createActivities>;
