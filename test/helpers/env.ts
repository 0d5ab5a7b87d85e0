import { randomBytes, type KeyObject } from 'node:crypto';
import { loadSigningKey } from '../../src/crypto/sign';
import type { Trust } from '../../src/repo/catalog';
import { type Config, type TargetConfig } from '../../src/config';
import { loadConfig } from '../../src/config/load';

/**
 * Tests run against the local stack's real servers (scripts/stack.sh up writes
 * the config). Each test file gets its own repository prefix, task queue and
 * database names, so files never see each other's backups.
 */
export function stackConfig(): Config {
  if (!process.env.LIFEBOAT_CONFIG) {
    throw new Error('LIFEBOAT_CONFIG is not set: start the local stack with `scripts/stack.sh up` and `eval "$(scripts/stack.sh env)"`, or run `npm test`');
  }
  return loadConfig(process.env.LIFEBOAT_CONFIG);
}

export function uniq(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

export interface TestEnv {
  config: Config;
  taskQueue: string;
  /** The Postgres databases this file's `app-pg` target backs up. */
  databases: string[];
}

export function testEnv(name: string, opts: { databases?: number } = {}): TestEnv {
  const base = stackConfig();
  const run = uniq(name.replace(/[^a-z0-9]/gi, '').toLowerCase());
  const databases = Array.from({ length: opts.databases ?? 1 }, (_, i) => `${run}_db${i}`);
  const pg = base.targets.get('app-pg');
  if (!pg) throw new Error(`${base.file} has no 'app-pg' target`);
  const targets = new Map<string, TargetConfig>([['app-pg', { ...pg, settings: { ...pg.settings, databases } }]]);
  const repository = base.repository.kind === 's3' ? { ...base.repository, prefix: `test/${run}` } : base.repository;
  // Its own id prefix, so its target locks (lock/<idPrefix>/<target>) never meet another file's or the stack's own drill.
  const schedules = { ...base.schedules!, idPrefix: idPrefixOf(run) };
  return { config: { ...base, repository, targets, schedules }, taskQueue: `lifeboat-test-${run}`, databases };
}

/** A schedules.idPrefix (1-40 of letters, digits, '.', '_', '-') for a test run. */
export function idPrefixOf(run: string): string {
  return `t-${run}`.slice(0, 40);
}

export function withTaskQueue(config: Config, taskQueue: string): Config {
  return { ...config, temporal: { ...config.temporal, taskQueue } };
}

/** The manifests the stack's config trusts (its signing key's). */
export function trustOf(config: Config): Trust {
  return { publicKeys: config.signing?.publicKeys ?? [], allowUnsigned: false };
}

/** The stack's signing key, for tests that rewrite a manifest as a backup worker would. */
export function signingKeyOf(config: Config): Promise<KeyObject> {
  if (!config.signing?.keyFile) throw new Error(`${config.file} has no signing.keyFile`);
  return loadSigningKey(config.signing.keyFile);
}
