import { targetOf, type Config, type KindSettings, type TargetConfig } from '../config';
import { LifeboatError } from '../errors';
import { suggest } from '../config/fields';
import { BucketStore } from './bucket';
import { bucketSettings, parseBucketSettings } from './bucket/settings';
import { ClickhouseStore } from './clickhouse';
import { clickhouseSettings, parseClickhouseSettings } from './clickhouse/settings';
import { InfluxdbStore } from './influxdb';
import { influxdbSettings, parseInfluxdbSettings } from './influxdb/settings';
import { PostgresStore } from './postgres';
import { parsePostgresSettings, postgresSettings } from './postgres/settings';
import { RedisStore } from './redis';
import { parseRedisSettings, redisSettings } from './redis/settings';
import type { Store } from './types';
import { VaultStore } from './vault';
import { parseVaultSettings, vaultSettings } from './vault/settings';

export * from './types';

interface Kind extends KindSettings {
  open(configFile: string, t: TargetConfig): Store;
}

/** One line per kind: adding a kind is adding its folder and a line here. */
const KINDS: Record<string, Kind> = {
  postgres: { settings: postgresSettings, parse: parsePostgresSettings, open: (file, t) => new PostgresStore(file, t) },
  clickhouse: { settings: clickhouseSettings, parse: parseClickhouseSettings, open: (file, t) => new ClickhouseStore(file, t) },
  bucket: { settings: bucketSettings, parse: parseBucketSettings, open: (file, t) => new BucketStore(file, t) },
  redis: { settings: redisSettings, parse: parseRedisSettings, open: (file, t) => new RedisStore(file, t) },
  vault: { settings: vaultSettings, parse: parseVaultSettings, open: (file, t) => new VaultStore(file, t) },
  influxdb: { settings: influxdbSettings, parse: parseInfluxdbSettings, open: (file, t) => new InfluxdbStore(file, t) },
};

export function openStore(config: Config, target: string): Store {
  const t = targetOf(config, target);
  const kind = KINDS[t.kind];
  if (!kind) {
    const s = suggest(t.kind, Object.keys(KINDS));
    throw new LifeboatError('ConfigError', `target '${target}' in ${config.file} has kind '${t.kind}', which this lifeboat does not know${s ? ` (did you mean '${s}'?)` : ''}; known kinds: ${Object.keys(KINDS).join(', ')}`);
  }
  return kind.open(config.file, t);
}

export function knownKinds(): string[] {
  return Object.keys(KINDS);
}

/** What the config needs of each kind to validate its targets. */
export function kindSettings(): Record<string, KindSettings> {
  return KINDS;
}
