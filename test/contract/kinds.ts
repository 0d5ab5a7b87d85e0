import type { Store } from '../../src/stores';

/**
 * One entry per kind for the shared store contract test. Each makes a store
 * on its real server, pointed at fresh, uniquely named objects, and removes
 * them afterwards.
 */
export interface ContractKind {
  kind: string;
  /** A store whose drill item exists and holds some ordinary data. */
  setup(): Promise<Store>;
  /** The same target with credentials the server refuses. */
  badCredentials(): Promise<Store>;
  teardown(): Promise<void>;
}

import { bucketKind } from './bucket-kind';
import { clickhouseKind } from './clickhouse-kind';
import { influxdbKind } from './influxdb-kind';
import { postgresKind } from './postgres-kind';
import { redisKind } from './redis-kind';
import { vaultKind } from './vault-kind';

export const KINDS: ContractKind[] = [postgresKind, bucketKind, clickhouseKind, redisKind, influxdbKind, vaultKind];
