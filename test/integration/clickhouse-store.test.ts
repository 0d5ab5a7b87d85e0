import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { validateName } from '../../src/domain/names';
import { LifeboatError } from '../../src/errors';
import type { BackupItem, Store, StoreContext } from '../../src/stores';
import { ClickhouseStore } from '../../src/stores/clickhouse';
import { parseSchemaDoc } from '../../src/stores/clickhouse/schema';
import { quoteIdent } from '../../src/stores/clickhouse/sql';
import { ch, chHttp, clickhouseStore, clickhouseTarget, dropDb, fingerprint, seedEvents } from '../contract/clickhouse-kind';
import { stackConfig, uniq } from '../helpers/env';

const stages: string[] = [];
const warnings: string[] = [];
const ctx: StoreContext = {
  signal: new AbortController().signal,
  progress: (p) => stages.push(p.stage),
  log: { info: () => undefined, warn: (m) => warnings.push(m) },
};

const db = uniq('chstore');
const copy = `${db}_copy`;
const ODD = 'we`ird \'name\' ü \\ with a long tail that will never fit into an artifact name';
const store = clickhouseStore([db]);

type Dump = Array<{ item: BackupItem; bytes: Buffer }>;

async function backupAll(s: Store = store): Promise<Dump> {
  const out: Dump = [];
  for (const item of await s.items(ctx)) {
    let bytes = Buffer.alloc(0);
    await s.backup(ctx, item, async (plaintext) => {
      const chunks: Buffer[] = [];
      for await (const c of plaintext) chunks.push(c as Buffer);
      bytes = Buffer.concat(chunks);
    });
    out.push({ item, bytes });
  }
  return out;
}

async function restoreAll(dump: Dump, into: string, s: Store = store): Promise<void> {
  for (const { item, bytes } of dump) await s.restore(ctx, item, into, Readable.from([bytes]));
}

const count = async (database: string, table: string) => Number((await ch(`SELECT count() FROM ${quoteIdent(database)}.${quoteIdent(table)}`)).trim());

beforeAll(async () => {
  await seedEvents(db, 20_000);
  await ch(`CREATE TABLE ${quoteIdent(db)}.${quoteIdent(ODD)} (k UInt32, v Nullable(String), a Array(Nullable(UInt8)), t Tuple(String, DateTime)) ENGINE = TinyLog`);
  await ch(`CREATE TABLE ${quoteIdent(db)}.empty_one (x UInt8) ENGINE = MergeTree ORDER BY x`);
  await ch(`INSERT INTO ${quoteIdent(db)}.${quoteIdent(ODD)} VALUES (1, NULL, [1, NULL], ('x', '2024-05-05 05:05:05')), (2, 'tab\\there', [], ('', '1970-01-02 00:00:00'))`);
});
afterAll(async () => {
  await dropDb(db);
  await dropDb(copy);
  await dropDb(big);
});

test('probe reports 18.16, logical only', async () => {
  const p = await store.probe(ctx);
  expect(p.serverVersion).toMatch(/^18\.16\./);
  expect(p.capabilities).toEqual(['logical', 'strategy:logical']);
});

test('items: schema first, then tables, the views, then materialized views\' own tables; all named after the database', async () => {
  const items = await store.items(ctx);
  expect(items.map((i) => i.item)).toEqual([
    `schema:${db}`,
    `table:${db}.empty_one`,
    `table:${db}.events`,
    `table:${db}.kind_counts`,
    `table:${db}.schema_migrations`,
    `table:${db}.${ODD}`,
    `views:${db}`,
    `table:${db}..inner.daily`,
  ]);
  expect(new Set(items.map((i) => i.name))).toEqual(new Set([db]));
  for (const i of items) expect(validateName('file', i.file)).toBe(i.file);
  expect(items[0]!.file).toBe(`${db}.schema.json`);
  expect(items[2]!.file).toBe(`${db}.events.native`);
  expect(items[5]!.file).toMatch(/^chstore_[0-9a-f]{8}_we_ird_name_.*-[0-9a-f]{10}\.native$/);
  expect(items[7]!.meta).toMatchObject({ table: '.inner.daily', owner: 'daily' });
});

test('the schema document lists tables before views, views in dependency order', async () => {
  const dump = await backupAll();
  const doc = parseSchemaDoc(dump[0]!.bytes.toString('utf8'), 'schema');
  expect(doc.objects.map((o) => `${o.kind}:${o.name}`)).toEqual([
    'table:empty_one',
    'table:events',
    'table:kind_counts',
    'table:schema_migrations',
    `table:${ODD}`,
    'view:daily',
    'view:kind_counts_mv',
    'view:recent',
    'inner:.inner.daily',
  ]);
  expect(doc.objects.find((o) => o.name === 'kind_counts_mv')!.dependsOn).toEqual(['events', 'kind_counts']);
  expect(dump[1]!.bytes.length).toBe(0);
  expect(dump[2]!.bytes.length).toBeGreaterThan(100_000);
});

test('restores under another name exactly: Nullable, Array, LowCardinality, DateTime, Tuple, the ledger, MV targets not double-counted', async () => {
  const dump = await backupAll();
  await restoreAll(dump, copy);
  for (const t of ['empty_one', 'events', 'schema_migrations', 'kind_counts', '.inner.daily', ODD]) {
    expect({ t, ...(await fingerprint(copy, t)) }).toEqual({ t, ...(await fingerprint(db, t)) });
  }
  expect(await count(copy, 'schema_migrations')).toBe(3);
  expect((await ch(`SELECT max(version) FROM ${quoteIdent(copy)}.schema_migrations`)).trim()).toBe('20240301000000');
  // The summing table holds what the original holds, not twice that: its view did not exist while the rows came back.
  expect((await ch(`SELECT sum(n) FROM ${quoteIdent(copy)}.kind_counts`)).trim()).toBe('20000');
  expect(await count(copy, 'recent')).toBe(20_000);
  expect(stages).toEqual(expect.arrayContaining(['schema', 'dump', 'drop', 'views', 'restore']));
});

test('the copy\'s views read and write the copy, not the original', async () => {
  await ch(`INSERT INTO ${quoteIdent(copy)}.events (id, at, kind, user, tags, score) VALUES (999999, '2025-01-01 00:00:00', 'new', NULL, [], NULL)`);
  expect((await ch(`SELECT n FROM ${quoteIdent(copy)}.kind_counts FINAL WHERE kind = 'new'`)).trim()).toBe('1');
  expect((await ch(`SELECT sum(n) FROM ${quoteIdent(copy)}.daily WHERE day = '2025-01-01'`)).trim()).toBe('1');
  expect(await count(copy, 'recent')).toBe(20_001);
  expect(await count(db, 'recent')).toBe(20_000);
  expect((await ch(`SELECT count() FROM ${quoteIdent(db)}.kind_counts WHERE kind = 'new'`)).trim()).toBe('0');
  const create = await ch(`SELECT create_table_query FROM system.tables WHERE database = '${copy}' AND name = 'kind_counts_mv'`);
  expect(create).toContain(`MATERIALIZED VIEW ${copy}.kind_counts_mv TO ${copy}.kind_counts`);
  expect(create).toContain(`FROM ${copy}.events`);
});

test('a database whose name needs quoting, with AggregateFunction states (server-buffered), restores under another such name', async () => {
  const from = `${db}-agg`;
  const to = `${db}-agg-copy`;
  const q = quoteIdent(from);
  try {
    await ch(`CREATE DATABASE ${q}`);
    await ch(`CREATE TABLE ${q}.src (day Date, user UInt64) ENGINE = MergeTree ORDER BY day`);
    await ch(`CREATE TABLE ${q}.uniq_users (day Date, u AggregateFunction(uniq, UInt64)) ENGINE = AggregatingMergeTree ORDER BY day`);
    await ch(`CREATE MATERIALIZED VIEW ${q}.uniq_mv TO ${q}.uniq_users AS SELECT day, uniqState(user) AS u FROM ${q}.src WHERE toString(day) != '${from}.src' GROUP BY day`);
    await ch(`INSERT INTO ${q}.src SELECT toDate('2024-01-01') + number % 30, number % 977 FROM system.numbers LIMIT 100000`);
    const s = clickhouseStore([from]);
    warnings.length = 0;
    const dump = await backupAll(s);
    expect(warnings).toEqual(['table has columns whose Native layout lifeboat cannot follow: the server buffers the whole result before sending it']);
    await restoreAll(dump, to, s);
    const uniq = (d: string) => ch(`SELECT day, uniqMerge(u) FROM ${quoteIdent(d)}.uniq_users GROUP BY day ORDER BY day`);
    expect(await uniq(to)).toBe(await uniq(from));
    expect((await uniq(to)).trim().split('\n')).toHaveLength(30);
    expect(await fingerprint(to, 'src')).toEqual(await fingerprint(from, 'src'));
  } finally {
    await dropDb(from);
    await dropDb(to);
  }
});

test('a table item restored again (a retry) starts from an empty table', async () => {
  const dump = await backupAll();
  await restoreAll(dump, copy);
  const events = dump.find((d) => d.item.item === `table:${db}.events`)!;
  await store.restore(ctx, events.item, copy, Readable.from([events.bytes]));
  await store.restore(ctx, events.item, copy, Readable.from([events.bytes]));
  expect(await count(copy, 'events')).toBe(20_000);
});

test('a restore stream that fails mid-way fails the restore', async () => {
  const dump = await backupAll();
  await restoreAll(dump.slice(0, 1), copy);
  const events = dump.find((d) => d.item.item === `table:${db}.events`)!;
  const failing = new Readable({ read() {} });
  failing.push(events.bytes.subarray(0, 50_000));
  setTimeout(() => failing.destroy(new LifeboatError('ChecksumMismatch', 'artifact failed its checksum')), 50);
  const err = (await store.restore(ctx, events.item, copy, failing).catch((e: unknown) => e)) as LifeboatError;
  expect(err.type).toBe('ChecksumMismatch');
});

/** A proxy in front of the stack's ClickHouse that breaks Native responses on purpose. */
async function breakingProxy(mode: { extraSettings?: string; cutAfterBytes?: number }): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const native = /FORMAT Native/.test(body.toString('latin1'));
      const path = native && mode.extraSettings ? `${req.url}${req.url!.includes('?') ? '&' : '?'}${mode.extraSettings}` : req.url;
      const up = http.request({ host: '127.0.0.1', port: 18123, path, method: req.method, headers: req.headers }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 500, upRes.headers);
        let sent = 0;
        upRes.on('data', (c: Buffer) => {
          if (native && mode.cutAfterBytes !== undefined && sent + c.length > mode.cutAfterBytes) {
            res.write(c.subarray(0, mode.cutAfterBytes - sent));
            res.socket?.destroy();
            upRes.destroy();
            return;
          }
          sent += c.length;
          res.write(c);
        });
        upRes.on('end', () => res.end());
      });
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

/** A table of several MiB as Native: more than the server's 1 MiB response buffer, so the 200 is sent before the end. */
const big = `${db}_big`;

async function backupThrough(url: string): Promise<{ err: unknown; stored: boolean }> {
  if ((await ch(`EXISTS TABLE ${big}.t`)).trim() !== '1') {
    await ch(`CREATE DATABASE IF NOT EXISTS ${big}`);
    await ch(`CREATE TABLE ${big}.t (n UInt64, s String, a Array(UInt16)) ENGINE = MergeTree ORDER BY n`);
    await ch(`INSERT INTO ${big}.t SELECT number, toString(number * 7919), range(number % 5) FROM system.numbers LIMIT 300000`);
  }
  const s = clickhouseStore([big], { url });
  const item = (await s.items(ctx)).find((i) => i.item === `table:${big}.t`)!;
  let stored = false;
  const err = await s
    .backup(ctx, item, async (plaintext) => {
      for await (const _ of plaintext) void _;
      stored = true; // a sink completes its upload only when the stream ends cleanly
    })
    .catch((e: unknown) => e);
  return { err, stored };
}

test('an error the server writes into a started response (after the 200) fails the stream, with the server\'s words', async () => {
  const proxy = await breakingProxy({ extraSettings: 'max_result_rows=250000&result_overflow_mode=throw&max_block_size=10000' });
  try {
    const { err, stored } = await backupThrough(proxy.url);
    expect(stored).toBe(false);
    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).type).toBe('StreamFailed');
    expect((err as LifeboatError).message).toMatch(/backing up table chstore_\w+_big\.t failed after \d+ blocks \(\d+ bytes\): the server reported Code 396: Limit for result exceeded/);
    expect(store.isPermanent(err)).toBe(false);
  } finally {
    await proxy.close();
  }
});

test('a response cut off mid-block fails the stream', async () => {
  const proxy = await breakingProxy({ cutAfterBytes: 1_500_001 });
  try {
    const { err, stored } = await backupThrough(proxy.url);
    expect(stored).toBe(false);
    expect((err as LifeboatError).type).toBe('StreamFailed');
    expect((err as LifeboatError).message).toMatch(/backing up table chstore_\w+_big\.t failed: the connection broke \(ECONNRESET: aborted\)/);
    expect(store.isPermanent(err)).toBe(false);
  } finally {
    await proxy.close();
  }
});

test('a wrong password is a permanent AuthFailed error naming the target and what to check', async () => {
  process.env.LIFEBOAT_TEST_CH_WRONG_PW = 'not-the-password';
  const bad = new ClickhouseStore(stackConfig().file, clickhouseTarget('events-ch', { databases: [db], password: { env: 'LIFEBOAT_TEST_CH_WRONG_PW' } }));
  const err = (await bad.probe(ctx).catch((e: unknown) => e)) as LifeboatError;
  expect(err.type).toBe('AuthFailed');
  expect(err.message).toMatch(/^clickhouse lifeboat@127\.0\.0\.1:18123 \(target events-ch\) refused the login while reading the server version: Code 193: Wrong password for user lifeboat; check targets\.events-ch\.user and password$/);
  expect(err.message).not.toContain('not-the-password');
  expect(bad.isPermanent(err)).toBe(true);
  const unknown = new ClickhouseStore(stackConfig().file, clickhouseTarget('events-ch', { databases: [db], user: 'nobody' }));
  const err2 = (await unknown.probe(ctx).catch((e: unknown) => e)) as LifeboatError;
  expect(err2.message).toContain('Code 192: Unknown user nobody');
  expect(unknown.isPermanent(err2)).toBe(true);
});

test('a missing database is permanent and named; an unreachable server is retryable', async () => {
  const missing = clickhouseStore(['no_such_db_here']);
  const err = (await missing.items(ctx).catch((e: unknown) => e)) as LifeboatError;
  expect(err.type).toBe('DatabaseNotFound');
  expect(err.message).toContain('database no_such_db_here does not exist; check targets.events-ch.databases');
  expect(missing.isPermanent(err)).toBe(true);
  const down = clickhouseStore([db], { url: 'http://127.0.0.1:1' });
  const err2 = (await down.probe(ctx).catch((e: unknown) => e)) as LifeboatError;
  expect(err2.type).toBe('Unreachable');
  expect(err2.message).toBe('clickhouse lifeboat@127.0.0.1:1 (target events-ch) is not reachable while reading the server version (connection refused; is the server up?)');
  expect(down.isPermanent(err2)).toBe(false);
});

test('a syntax error and an unknown table are permanent', async () => {
  const item: BackupItem = { item: `table:${db}.nope`, name: db, file: 'x.native', format: 'clickhouse-native', meta: { database: db, table: 'nope' } };
  const err = (await store.backup(ctx, item, async () => undefined).catch((e: unknown) => e)) as LifeboatError;
  expect(err.type).toBe('TableNotFound');
  expect(err.message).toContain(`table ${db}.nope is gone`);
  expect(store.isPermanent(err)).toBe(true);
  const syntax = (await chHttp()
    .exec({ sql: 'SELEC 1', what: 'a typo', signal: ctx.signal })
    .catch((e: unknown) => e)) as LifeboatError;
  expect(syntax.message).toMatch(/^clickhouse lifeboat@127\.0\.0\.1:18123 \(target test\): a typo failed \(HTTP 400\): Code 62: Syntax error/);
  expect(store.isPermanent(syntax)).toBe(true);
});

test('markers: seeded idempotently, counted by nonce, none without table or database', async () => {
  const name = uniq('chmarkers');
  await ch(`CREATE DATABASE ${name}`);
  try {
    expect((await store.countMarkers(ctx, name, 'n1')).found).toEqual([]);
    await store.seedMarkers(ctx, name, 251, 'n1');
    await store.seedMarkers(ctx, name, 251, 'n1');
    await store.seedMarkers(ctx, name, 10, 'n2');
    expect((await store.countMarkers(ctx, name, 'n1')).found).toEqual(Array.from({ length: 251 }, (_, i) => i + 1));
    expect((await store.countMarkers(ctx, name, 'n2')).found).toHaveLength(10);
    expect((await store.countMarkers(ctx, name, "it's")).found).toEqual([]);
  } finally {
    await dropDb(name);
  }
  expect((await store.countMarkers(ctx, name, 'n1')).found).toEqual([]);
  expect(store.scratchName('1a2b3c4d')).toBe('lifeboat_drill_1a2b3c4d');
  expect(store.drillName()).toBe(db);
});
