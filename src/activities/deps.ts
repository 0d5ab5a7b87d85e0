import type { KeyObject } from 'node:crypto';
import type { Config } from '../config';
import { loadSigningKey } from '../crypto/sign';
import { validateName } from '../domain/names';
import { openRepository, type Repository } from '../repo';
import type { Trust } from '../repo/catalog';
import type { StoreContext } from '../stores';

/** What every group of activities shares: the worker's config and, opened once, the repository. */
export interface Deps {
  config: Config;
  repo(): Promise<Repository>;
  /** The target's repository folder, for stores that keep more than one stream per item. */
  scope(target: string, backupId?: string): Promise<Pick<StoreContext, 'repository'>>;
  /** Which manifests to believe (signing.publicKeys; unsigned ones only when asked). */
  trust(allowUnsigned?: boolean): Trust;
  /** The key manifests are signed with, when this worker has one. */
  signingKey(): Promise<KeyObject | undefined>;
}

export function makeDeps(config: Config): Deps {
  let repoPromise: Promise<Repository> | undefined;
  let keyPromise: Promise<KeyObject | undefined> | undefined;
  const repo = () => (repoPromise ??= openRepository(config));
  return {
    config,
    repo,
    scope: async (target, backupId) => ({
      repository: {
        repo: await repo(),
        dir: validateName('target', target),
        encryption: config.encryption,
        compression: config.compression,
        location: config.repository,
        trust: { publicKeys: config.signing?.publicKeys ?? [], allowUnsigned: false },
        ...(backupId ? { backupId } : {}),
      },
    }),
    trust: (allowUnsigned = false) => ({ publicKeys: config.signing?.publicKeys ?? [], allowUnsigned }),
    signingKey: () => (keyPromise ??= config.signing?.keyFile ? loadSigningKey(config.signing.keyFile) : Promise.resolve(undefined)),
  };
}

export const seconds = (since: number) => Math.round((performance.now() - since) / 10) / 100;
