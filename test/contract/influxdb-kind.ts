import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import type { TargetConfig } from '../../src/config';
import { parseConfig } from '../../src/config/load';
import { InfluxdbStore } from '../../src/stores/influxdb';
import { InfluxHttp, rows } from '../../src/stores/influxdb/http';
import { quoteIdent } from '../../src/stores/influxdb/influxql';
import { stackConfig, uniq } from '../helpers/env';
import type { ContractKind } from './kinds';

/**
 * Helpers for the influxdb kind's tests (contract, integration, crash): the
 * stack's InfluxDB (1.6 on 127.0.0.1:18086 with auth on, RPC on 18088, user
 * lifeboat, password in the stack's secrets folder) and targets pointed at
 * fresh databases.
 */
export const INFLUX_URL = 'http://127.0.0.1:18086';
export const INFLUX_RPC = '127.0.0.1:18088';

export function influxPasswordFile(): string {
  return join(process.env.LIFEBOAT_STATE_DIR ?? dirname(stackConfig().file), 'secrets', 'influxdb-password');
}

/** An influxdb target as lifeboat.yaml would give it, parsed by the real config code. */
export function influxTarget(name: string, settings: Record<string, unknown>): TargetConfig {
  const text = stringify({
    repository: { kind: 'local', path: '/nonexistent' },
    encryption: 'none',
    targets: { [name]: { kind: 'influxdb', url: INFLUX_URL, rpcAddress: INFLUX_RPC, user: 'lifeboat', password: { file: influxPasswordFile() }, ...settings } },
  });
  return parseConfig(text, stackConfig().file).targets.get(name)!;
}

export function influxStore(databases: string[], extra: Record<string, unknown> = {}): InfluxdbStore {
  return new InfluxdbStore(stackConfig().file, influxTarget('metrics-influx', { databases, ...extra }));
}

const never = new AbortController().signal;

/** A direct HTTP client for arranging and inspecting test data. */
export function influxHttp(): InfluxHttp {
  return new InfluxHttp({ url: INFLUX_URL, user: 'lifeboat', password: readFileSync(influxPasswordFile(), 'utf8').trim(), target: 'test' });
}

export async function influx(q: string, db?: string): Promise<Array<Record<string, unknown>>> {
  return rows(await influxHttp().query({ q, db, what: 'test query', signal: never }));
}

export async function influxWrite(db: string, lines: string[]): Promise<void> {
  await influxHttp().write(db, `${lines.join('\n')}\n`, 'test write', never);
}

export async function dropInflux(db: string): Promise<void> {
  await influx(`DROP DATABASE ${quoteIdent(db)}`);
}

export async function databases(): Promise<string[]> {
  return (await influx('SHOW DATABASES')).map((r) => String(r.name));
}

const DAY = 86_400_000;

/**
 * A metrics-like database: `cpu` points every minute over the last `days`
 * days for 4 hosts in the default policy `autogen` (one shard per week, so
 * several shards), `events` in a second policy `short` (30 days), and a
 * continuous query rolling `cpu` up per hour.
 */
export async function seedMetrics(db: string, days = 10): Promise<{ cpu: number; events: number }> {
  const d = quoteIdent(db);
  await influx(`CREATE DATABASE ${d}`);
  await influx(`CREATE RETENTION POLICY "short" ON ${d} DURATION 30d REPLICATION 1`);
  await influx(`CREATE CONTINUOUS QUERY "cpu_hourly" ON ${d} BEGIN SELECT mean("usage") INTO "cpu_1h" FROM "cpu" GROUP BY time(1h), * END`);
  const now = Math.floor(Date.now() / 60_000) * 60_000;
  let cpu = 0;
  for (let day = 0; day < days; day++) {
    const lines: string[] = [];
    for (let m = 0; m < 1440; m += 1) {
      const t = now - day * DAY - m * 60_000;
      for (let host = 0; host < 4; host++) lines.push(`cpu,host=h${host},region=r${host % 2} usage=${((m * 7 + host * 13) % 1000) / 10},procs=${m % 97}i ${t}`);
    }
    await influxHttp().write(db, `${lines.join('\n')}\n`, 'seeding cpu', never);
    cpu += lines.length;
  }
  const events = Array.from({ length: 200 }, (_, i) => `events,kind=k${i % 5} payload="event ${i}",n=${i}i ${now - i * 3_600_000}`);
  await writeInto(db, 'short', events);
  return { cpu, events: events.length };
}

/** Writes into a named retention policy (the store's client always writes into the default one). */
async function writeInto(db: string, rp: string, lines: string[]): Promise<void> {
  const auth = Buffer.from(`lifeboat:${readFileSync(influxPasswordFile(), 'utf8').trim()}`).toString('base64');
  const r = await fetch(`${INFLUX_URL}/write?${new URLSearchParams({ db, rp, precision: 'ms' })}`, { method: 'POST', headers: { Authorization: `Basic ${auth}` }, body: `${lines.join('\n')}\n` });
  if (r.status !== 204) throw new Error(`write into ${db}.${rp}: HTTP ${r.status} ${await r.text()}`);
}

/** Counts of every measurement in every policy, and a content fingerprint of `cpu`: what a restore must bring back. */
export async function contents(db: string): Promise<Record<string, unknown>> {
  const count = async (field: string, from: string) => Number((await influx(`SELECT count("${field}") FROM ${from}`, db))[0]?.count ?? 0);
  const sums = (await influx('SELECT sum("usage") AS u, sum("procs") AS p FROM "autogen"."cpu" GROUP BY "host"', db)).map((r) => [r.u, r.p]);
  const policies = (await influx(`SHOW RETENTION POLICIES ON ${quoteIdent(db)}`)).map((r) => [r.name, r.duration, r.default]);
  return { cpu: await count('usage', '"autogen"."cpu"'), events: await count('n', '"short"."events"'), sums, policies };
}

let db = '';

export const influxdbKind: ContractKind = {
  kind: 'influxdb',
  async setup() {
    db = uniq('contractinflux');
    await seedMetrics(db, 3);
    return influxStore([db]);
  },
  async badCredentials() {
    process.env.LIFEBOAT_CONTRACT_BAD_INFLUX_PW = 'wrong-password';
    return new InfluxdbStore(stackConfig().file, influxTarget('metrics-influx', { databases: [db], password: { env: 'LIFEBOAT_CONTRACT_BAD_INFLUX_PW' } }));
  },
  async teardown() {
    await dropInflux(db);
  },
};
