import { Readable } from 'node:stream';
import { LifeboatError } from '../../src/errors';
import { PostgresStore } from '../../src/stores/postgres';
import type { StoreContext } from '../../src/stores';
import { testEnv } from '../helpers/env';
import { countRows, createDatabase, dropDatabase, pg, seedApp } from '../helpers/pg';

const env = testEnv('pgstore');
const db = env.databases[0]!;
const target = env.config.targets.get('app-pg')!;
const store = new PostgresStore(env.config.file, target);
const stages: string[] = [];
const ctx: StoreContext = { signal: new AbortController().signal, progress: (p) => stages.push(p.stage), log: { info: () => undefined, warn: () => undefined } };

/** The database's item (the target's first item is its globals). */
async function dbItem() {
  return (await store.items(ctx)).find((i) => i.name === db)!;
}

async function dump(): Promise<Buffer> {
  const item = await dbItem();
  let out = Buffer.alloc(0);
  await store.backup(ctx, item, async (plaintext) => {
    const chunks: Buffer[] = [];
    for await (const c of plaintext) chunks.push(c as Buffer);
    out = Buffer.concat(chunks);
  });
  return out;
}

beforeAll(async () => {
  await createDatabase(env.config, db);
  await seedApp(env.config, db, 300);
});
afterAll(async () => {
  await dropDatabase(env.config, db);
  await dropDatabase(env.config, `${db}_copy`);
});

test('probe reports the server and tool versions', async () => {
  const p = await store.probe(ctx);
  expect(p.serverVersion).toMatch(/^15\./);
  expect(Number.parseInt(p.tools.pg_dump!, 10)).toBeGreaterThanOrEqual(15);
});

test('a custom-format dump restores under another name', async () => {
  const bytes = await dump();
  expect(bytes.subarray(0, 5).toString()).toBe('PGDMP');
  const item = await dbItem();
  await store.restore(ctx, item, `${db}_copy`, Readable.from([bytes]));
  expect(await countRows(env.config, `${db}_copy`)).toBe(300);
  expect(stages).toEqual(expect.arrayContaining(['dump', 'drop', 'restore']));
});

test('a cancelled check stops its statement on the server, not only the wait for it', async () => {
  const ac = new AbortController();
  const running = store.check({ ...ctx, signal: ac.signal }, db, 'SELECT pg_sleep(60) IS NOT NULL');
  const sleeping = () => pg(env.config, 'postgres', async (c) => Number((await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep(60)%'", [db])).rows[0].n));
  for (let i = 0; i < 50 && (await sleeping()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
  expect(await sleeping()).toBe(1);
  ac.abort();
  await expect(running).rejects.toThrow();
  for (let i = 0; i < 20 && (await sleeping()) > 0; i++) await new Promise((r) => setTimeout(r, 100));
  expect(await sleeping()).toBe(0);
  // A cancel that came first runs nothing.
  await expect(store.check({ ...ctx, signal: ac.signal }, db, 'SELECT true')).rejects.toThrow();
});

test('markers: seeded, counted, idempotent for one nonce', async () => {
  await store.seedMarkers(ctx, db, 137, 'nonce-a');
  await store.seedMarkers(ctx, db, 137, 'nonce-a');
  expect((await store.countMarkers(ctx, db, 'nonce-a')).found).toHaveLength(137);
  expect((await store.countMarkers(ctx, db, 'nonce-b')).found).toHaveLength(0);
});

test('a truncated dump fails the restore with pg_restore\'s own words', async () => {
  const bytes = await dump();
  const item = await dbItem();
  const err = await store.restore(ctx, item, `${db}_copy`, Readable.from([bytes.subarray(0, Math.floor(bytes.length / 2))])).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LifeboatError);
  expect((err as LifeboatError).message).toMatch(/^pg_restore exited with code 1: pg_restore: error/);
});

test('a wrong password is a permanent AuthFailed error that names the target', async () => {
  const bad = new PostgresStore(env.config.file, { ...target, settings: { ...target.settings, password: { env: 'LIFEBOAT_TEST_WRONG_PW' } } });
  process.env.LIFEBOAT_TEST_WRONG_PW = 'not-the-password';
  const err = (await bad.probe(ctx).catch((e: unknown) => e)) as LifeboatError;
  expect(err.type).toBe('AuthFailed');
  expect(err.message).toContain('(target app-pg) refused the login');
  expect(bad.isPermanent(err)).toBe(true);
});

test('a missing database is reported by name and not retried', async () => {
  const item = await dbItem();
  const missing = new PostgresStore(env.config.file, { ...target, settings: { ...target.settings, databases: ['no_such_db_here'] } });
  const err = (await missing.backup(ctx, { ...item, name: 'no_such_db_here' }, async (s) => {
    for await (const _ of s) void _;
  }).catch((e: unknown) => e)) as LifeboatError;
  expect(err.message).toMatch(/pg_dump exited with code 1: .*database "no_such_db_here" does not exist/);
  expect(missing.isPermanent(err)).toBe(true);
});
