import { targetOf, type Config } from '../config';
import { LifeboatError } from '../errors';
import { BucketStore } from './bucket';
import { ClickhouseStore } from './clickhouse';
import { PostgresStore } from './postgres';
import type { Store } from './types';

export * from './types';

/** One line per kind: adding a kind is adding its folder and a line here. */
const KINDS: Record<string, (configFile: string, t: ReturnType<typeof targetOf>) => Store> = {
  postgres: (file, t) => new PostgresStore(file, t),
  bucket: (file, t) => new BucketStore(file, t),
  clickhouse: (file, t) => new ClickhouseStore(file, t),
};

export function openStore(config: Config, target: string): Store {
  const t = targetOf(config, target);
  const make = KINDS[t.kind];
  if (!make) {
    throw new LifeboatError('ConfigError', `target '${target}' in ${config.file} has kind '${t.kind}', which this lifeboat does not know; known kinds: ${Object.keys(KINDS).join(', ')}`);
  }
  return make(config.file, t);
}

export function knownKinds(): string[] {
  return Object.keys(KINDS);
}
