import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import type { TargetConfig } from '../../src/config';
import { parseConfig } from '../../src/config/load';
import { ClickhouseHttp } from '../../src/stores/clickhouse/http';
import { ClickhouseStore } from '../../src/stores/clickhouse';
import { quoteIdent } from '../../src/stores/clickhouse/sql';
import { stackConfig, uniq } from '../helpers/env';
import type { ContractKind } from './kinds';

/**
 * Helpers for the clickhouse kind's tests (contract, integration, bench): the
 * stack's ClickHouse (18.16 on 127.0.0.1:18123, user lifeboat, password in the
 * stack's secrets folder) and targets pointed at fresh databases.
 */
export const CH_URL = 'http://127.0.0.1:18123';

/** 18.16 refuses LowCardinality columns (in tables and in views' headers) without this. */
const LC = { allow_experimental_low_cardinality_type: 1 };

export function chPasswordFile(): string {
  return join(process.env.LIFEBOAT_STATE_DIR ?? dirname(stackConfig().file), 'secrets', 'clickhouse-password');
}

/** A clickhouse target as lifeboat.yaml would give it, parsed by the real config code. */
export function clickhouseTarget(name: string, settings: Record<string, unknown>): TargetConfig {
  const text = stringify({
    repository: { kind: 'local', path: '/nonexistent' },
    encryption: 'none',
    targets: { [name]: { kind: 'clickhouse', url: CH_URL, user: 'lifeboat', password: { file: chPasswordFile() }, ...settings } },
  });
  return parseConfig(text, stackConfig().file).targets.get(name)!;
}

export function clickhouseStore(databases: string[], extra: Record<string, unknown> = {}): ClickhouseStore {
  return new ClickhouseStore(stackConfig().file, clickhouseTarget('events-ch', { databases, ...extra }));
}

const never = new AbortController().signal;

/** A direct HTTP client for arranging and inspecting test data. */
export function chHttp(): ClickhouseHttp {
  const password = readFileSync(chPasswordFile(), 'utf8').trim();
  return new ClickhouseHttp({ url: CH_URL, user: 'lifeboat', password, target: 'test' });
}

export async function ch(sql: string, settings: Record<string, string | number> = {}): Promise<string> {
  return chHttp().text({ sql, settings, what: 'test query', signal: never });
}

/** A query's raw response bytes (e.g. a Native stream), whatever they are. */
export async function chBytes(sql: string, settings: Record<string, string | number> = {}): Promise<Buffer> {
  const res = await chHttp().open({ sql, settings, what: 'test query', signal: never });
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function dropDb(name: string): Promise<void> {
  await ch(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
}

/**
 * An events-like database: a MergeTree fact table with Nullable, Array and
 * DateTime columns, a schema_migrations ledger, a SummingMergeTree fed by a
 * materialized view, a materialized view with its own implicit table, and a
 * plain view.
 */
export async function seedEvents(db: string, rows = 5000): Promise<void> {
  const d = quoteIdent(db);
  await ch(`CREATE DATABASE ${d}`);
  await ch(`CREATE TABLE ${d}.events (id UInt64, at DateTime, kind LowCardinality(String), user Nullable(String), tags Array(String), score Nullable(Float64), day Date DEFAULT toDate(at)) ENGINE = MergeTree PARTITION BY toYYYYMM(at) ORDER BY (at, id)`, LC);
  await ch(`CREATE TABLE ${d}.schema_migrations (version UInt64, dirty UInt8, applied_at DateTime) ENGINE = MergeTree ORDER BY version`);
  await ch(`CREATE TABLE ${d}.kind_counts (kind LowCardinality(String), n UInt64) ENGINE = SummingMergeTree ORDER BY kind`, LC);
  await ch(`CREATE MATERIALIZED VIEW ${d}.kind_counts_mv TO ${d}.kind_counts AS SELECT kind, toUInt64(count()) AS n FROM ${d}.events GROUP BY kind`, LC);
  await ch(`CREATE MATERIALIZED VIEW ${d}.daily ENGINE = SummingMergeTree ORDER BY day AS SELECT day, toUInt64(count()) AS n FROM ${d}.events GROUP BY day`, LC);
  await ch(`CREATE VIEW ${d}.recent AS SELECT id, kind FROM ${d}.events WHERE at > toDateTime('2020-01-01 00:00:00')`, LC);
  await ch(
    `INSERT INTO ${d}.events (id, at, kind, user, tags, score) SELECT number, toDateTime('2024-01-01 00:00:00') + number * 97, ['click','view','buy'][number % 3 + 1], if(number % 7 = 0, NULL, concat('u', toString(number % 101))), arrayMap(i -> concat('t', toString(i)), range(number % 4)), if(number % 5 = 0, NULL, number / 3) FROM system.numbers LIMIT ${rows}`,
  );
  await ch(`INSERT INTO ${d}.schema_migrations VALUES (20240101000000, 0, '2024-01-01 00:00:00'), (20240201000000, 0, '2024-02-01 00:00:00'), (20240301000000, 0, '2024-03-01 00:00:00')`);
}

/** Order-independent content fingerprint: rows dumped as TSV (exact text of every value), sorted, hashed. */
export async function fingerprint(db: string, table: string): Promise<{ rows: number; hash: string }> {
  const t = `${quoteIdent(db)}.${quoteIdent(table)}`;
  const [rows, hash] = (await ch(`SELECT count(), groupBitXor(cityHash64(line)) FROM (SELECT toString(tuple(*)) AS line FROM ${t})`)).trim().split('\t');
  return { rows: Number(rows), hash: hash! };
}

let db = '';


export const clickhouseKind: ContractKind = {
  kind: 'clickhouse',
  async setup() {
    db = uniq('contractch');
    await seedEvents(db, 3000);
    return clickhouseStore([db]);
  },
  async badCredentials() {
    process.env.LIFEBOAT_CONTRACT_BAD_CH_PW = 'wrong-password';
    return new ClickhouseStore(stackConfig().file, clickhouseTarget('events-ch', { databases: [db], password: { env: 'LIFEBOAT_CONTRACT_BAD_CH_PW' } }));
  },
  async teardown() {
    await dropDb(db);
  },
};
