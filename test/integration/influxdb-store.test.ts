import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BackupItem, Store, StoreContext } from '../../src/stores';
import { uniq } from '../helpers/env';
import { contents, databases, dropInflux, influx, influxHttp, influxPasswordFile, influxStore, seedMetrics } from '../contract/influxdb-kind';

/**
 * The influxdb kind against the stack's InfluxDB 1.6: several databases,
 * restores under another name and in place, what comes back (retention
 * policies, shards, continuous queries), what is never touched, and that no
 * credential reaches influxd.
 */
jest.setTimeout(300_000);

const warnings: string[] = [];
const ctx: StoreContext = { signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: (m) => void warnings.push(m) } };

const a = uniq('itinflux_a');
const b = uniq('itinflux_b');
const bystander = uniq('itinflux_by');
const copies: string[] = [];
let spoolDir: string;
let store: Store;
let before: Record<string, Record<string, unknown>>;

async function backupAll(s: Store): Promise<Array<{ item: BackupItem; bytes: Buffer }>> {
  const out = [];
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

const subscriptions = async (db: string) =>
  ((await influxHttp().query({ q: 'SHOW SUBSCRIPTIONS', what: 'test', signal: ctx.signal })).find((x) => x.name === db)?.values ?? []).map((v) => `${String(v[0])}.${String(v[1])}`);

const cqs = async (db: string) =>
  (await influx('SHOW CONTINUOUS QUERIES')).filter((r) => r.query && String(r.query).includes(` ON ${db} `)).map((r) => String(r.name));

beforeAll(async () => {
  spoolDir = await mkdtemp(join(tmpdir(), 'lifeboat-influx-spool-'));
  await seedMetrics(a, 12);
  // Forwards every write to a port nobody listens on (loopback, UDP: nothing notices).
  await influx(`CREATE SUBSCRIPTION "forward" ON "${a}"."autogen" DESTINATIONS ALL 'udp://127.0.0.1:9'`);
  await seedMetrics(b, 2);
  await seedMetrics(bystander, 1);
  before = { [a]: await contents(a), [b]: await contents(b), [bystander]: await contents(bystander) };
  store = influxStore([a, b], { spoolDir });
});

afterAll(async () => {
  for (const db of [a, b, bystander, ...copies]) await dropInflux(db);
  await rm(spoolDir, { recursive: true, force: true });
});

test('probe: server 1.6, influxd 1.6, the portable format', async () => {
  const p = await store.probe(ctx);
  expect(p.serverVersion).toMatch(/^1\.6\./);
  expect(p.tools.influxd).toMatch(/^1\.6\./);
  expect(p.capabilities).toEqual(['influxdb-portable-tar']);
});

test('several databases: one item each, in config order, each restores under another name with its data and policies; nothing else is touched', async () => {
  const dump = await backupAll(store);
  expect(dump.map((d) => [d.item.item, d.item.name, d.item.file, d.item.format])).toEqual([
    [`database:${a}`, a, `${a}.influxdb.tar`, 'influxdb-portable-tar'],
    [`database:${b}`, b, `${b}.influxdb.tar`, 'influxdb-portable-tar'],
  ]);
  // The facts a restore needs were added to the item while it was backed up.
  expect(dump[0]!.item.meta).toMatchObject({ influxd: expect.stringMatching(/^1\.6/), fileBytes: expect.any(Number), files: expect.any(Number) });
  expect(before[a]!.cpu).toBe(12 * 1440 * 4);
  warnings.length = 0;
  for (const { item, bytes } of dump) {
    const into = store.scratchName(`${item.name.slice(-8)}`);
    copies.push(into);
    await store.restore(ctx, item, into, Readable.from([bytes]));
    expect(await contents(into)).toEqual(before[item.name]);
    // Continuous queries name the original database: a copy does not get them, and the log says so.
    expect(await cqs(into)).toEqual([]);
    // Subscriptions come with the policies: a copy has them dropped, so its writes reach no subscriber.
    expect(await subscriptions(into)).toEqual([]);
  }
  expect(await subscriptions(a)).toEqual(['autogen.forward']);
  expect(warnings.filter((w) => /continuous queries cpu_hourly of database .* were not created in its copy/.test(w))).toHaveLength(2);
  for (const db of [a, b, bystander]) expect(await contents(db)).toEqual(before[db]);
  expect(await cqs(a)).toEqual(['cpu_hourly']);
  expect(await readdir(spoolDir)).toEqual([]);
});

test('drop, then restore in place: data, retention policies (and the default), the subscription and the continuous query come back', async () => {
  const [dump] = await backupAll(influxStore([a], { spoolDir }));
  await store.drop(ctx, a);
  expect(await databases()).not.toContain(a);
  await store.restore(ctx, dump!.item, a, Readable.from([dump!.bytes]));
  expect(await contents(a)).toEqual(before[a]);
  expect(await cqs(a)).toEqual(['cpu_hourly']);
  expect(await subscriptions(a)).toEqual(['autogen.forward']);
  expect(await contents(bystander)).toEqual(before[bystander]);
  expect(await readdir(spoolDir)).toEqual([]);
});

test('a restore replaces an existing database of the target name (drop first) and leaves every other database as it was', async () => {
  const into = uniq('itinflux_into');
  copies.push(into);
  await seedMetrics(into, 1);
  await influx(`CREATE RETENTION POLICY "extra" ON "${into}" DURATION 2d REPLICATION 1`);
  const [, dumpB] = await backupAll(store);
  // This file's databases (other test files may add or drop theirs meanwhile).
  const mine = async () => (await databases()).filter((d) => d.startsWith('itinflux_')).sort();
  const all = await mine();
  await store.restore(ctx, dumpB!.item, into, Readable.from([dumpB!.bytes]));
  expect(await contents(into)).toEqual(before[b]);
  expect((await influx(`SHOW RETENTION POLICIES ON "${into}"`)).map((r) => r.name)).not.toContain('extra');
  expect(await mine()).toEqual(all);
  for (const db of [a, b, bystander]) expect(await contents(db)).toEqual(before[db]);
});

test('a database without data: its policies back up and come back', async () => {
  const empty = uniq('itinflux_empty');
  const copy = uniq('itinflux_emptycopy');
  copies.push(empty, copy);
  await influx(`CREATE DATABASE "${empty}" WITH DURATION 7d NAME "week"`);
  const [dump] = await backupAll(influxStore([empty], { spoolDir }));
  await store.restore(ctx, dump!.item, copy, Readable.from([dump!.bytes]));
  expect((await influx(`SHOW RETENTION POLICIES ON "${copy}"`)).map((r) => [r.name, r.duration, r.default])).toEqual([['week', '168h0m0s', true]]);
});

test('markers: seeding twice writes each once; counting finds only the nonce; a missing database has none', async () => {
  await store.seedMarkers(ctx, b, 113, 'nonce-one');
  await store.seedMarkers(ctx, b, 113, 'nonce-one');
  await store.seedMarkers(ctx, b, 5, 'nonce-two');
  const found = (await store.countMarkers(ctx, b, 'nonce-one')).found.sort((x, y) => x - y);
  expect(found).toEqual(Array.from({ length: 113 }, (_, i) => i + 1));
  expect((await store.countMarkers(ctx, b, 'nonce-two')).found).toHaveLength(5);
  expect((await store.countMarkers(ctx, b, "it's \"quoted\"")).found).toEqual([]);
  expect((await store.countMarkers(ctx, uniq('itinflux_none'), 'nonce-one')).found).toEqual([]);
  // A half-seeded retry (the first 40 written) completes the set without duplicates.
  await store.seedMarkers(ctx, b, 40, 'nonce-three');
  await store.seedMarkers(ctx, b, 113, 'nonce-three');
  expect((await store.countMarkers(ctx, b, 'nonce-three')).found).toHaveLength(113);
  const n = await influx(`SELECT count("seq") FROM "lifeboat_drill_markers" WHERE "nonce" = 'nonce-three'`, b);
  expect(n[0]!.count).toBe(113);
});

test('a refused password is permanent, names the target and the fix, and never shows the password', async () => {
  process.env.LIFEBOAT_IT_BAD_INFLUX_PW = 'not-the-password-4711';
  const bad = influxStore([a], { password: { env: 'LIFEBOAT_IT_BAD_INFLUX_PW' } });
  for (const call of [() => bad.probe(ctx), () => bad.items(ctx), () => bad.drop(ctx, a), () => bad.seedMarkers(ctx, a, 3, 'x')]) {
    const err = (await call().catch((e: unknown) => e)) as Error & { type?: string };
    expect(err.type).toBe('AuthFailed');
    expect(bad.isPermanent(err)).toBe(true);
    expect(err.message).toMatch(/refused the login .*check targets\.metrics-influx\.user and password/);
    expect(err.message).not.toContain('not-the-password-4711');
  }
  expect(await databases()).toContain(a);
});

test('a database that does not exist fails the backup permanently before influxd runs', async () => {
  const missing = uniq('itinflux_missing');
  const err = (await influxStore([missing], { spoolDir }).items(ctx).catch((e: unknown) => e)) as Error & { type?: string };
  expect(err.type).toBe('DatabaseNotFound');
  expect(err.message).toContain(missing);
  expect(store.isPermanent(err)).toBe(true);
});

test('influxd gets no credential: neither in its arguments nor in its environment', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-influxd-spy-'));
  try {
    // A stand-in that records what it was given, then runs the real influxd.
    const spy = join(dir, 'influxd');
    await writeFile(spy, `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/args.$$"\nenv > "${dir}/env.$$"\nexec influxd "$@"\n`);
    await chmod(spy, 0o755);
    const s = influxStore([b], { spoolDir, influxd: spy });
    const [dump] = await backupAll(s);
    const copy = uniq('itinflux_spy');
    copies.push(copy);
    await s.restore(ctx, dump!.item, copy, Readable.from([dump!.bytes]));
    const password = (await readFile(influxPasswordFile(), 'utf8')).trim();
    const files = await readdir(dir);
    const args = files.filter((f) => f.startsWith('args.'));
    expect(args.length).toBeGreaterThanOrEqual(3); // version, backup, restore
    const all = (await Promise.all(files.filter((f) => f !== 'influxd').map((f) => readFile(join(dir, f), 'utf8')))).join('\n');
    expect(all).toContain('-portable');
    expect(all).not.toContain(password);
    expect(all).not.toMatch(/LIFEBOAT|INFLUX_PASSWORD|INFLUX_USERNAME/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
