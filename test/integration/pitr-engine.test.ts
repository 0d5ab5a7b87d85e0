import { stat } from 'node:fs/promises';
import { parseTargetTime } from '../../src/domain/pitr';
import { pitrSpec } from '../../src/activities/pitr';
import { PitrEngine } from '../../src/stores/postgres/pitr';
import { drillRestore, scratchOf } from '../../src/stores/postgres/pitr/scratch';
import { findProcesses } from '../../src/stores/postgres/pitr/run';
import { serverNow, switchAndWaitArchived } from '../../src/stores/postgres/pitr/server';
import type { StoreContext } from '../../src/stores/types';
import { testEnv } from '../helpers/env';
import { createPitrCluster, type PitrCluster } from '../helpers/pitr-cluster';

/**
 * The PITR engine against a real pgBackRest, a PostgreSQL cluster of this
 * test's own and the stack's MinIO (through its TLS front): config, stanza,
 * full and incremental backups, the catalog's window, and a scratch restore
 * to a time between two batches of rows.
 */
jest.setTimeout(600_000);

const env = testEnv('pitrengine');
let cluster: PitrCluster;
let engine: PitrEngine;
const percents: number[] = [];
const ctx: StoreContext = {
  signal: new AbortController().signal,
  progress: (p) => p.percent !== undefined && percents.push(p.percent),
  log: { info: () => undefined, warn: () => undefined },
};

beforeAll(async () => {
  cluster = await createPitrCluster(env);
  engine = new PitrEngine(pitrSpec(cluster.config, cluster.target));
});

afterAll(async () => {
  await cluster?.destroy();
});

test('setup writes a private config owned by the data directory owner, creates the stanza and proves archiving', async () => {
  const r = await engine.setup(ctx, { check: true });
  const st = await stat(r.config);
  const owner = await stat(cluster.dataDir);
  expect(st.mode & 0o777).toBe(0o600);
  expect(st.uid).toBe(owner.uid);
  expect(r.archiveCommand).toContain(`--stanza=${cluster.target} archive-push %p`);
  expect(r.repository).toMatch(new RegExp(`/test/.+/pitr/${cluster.target}$`));
  // Idempotent: a second setup changes nothing and still passes.
  await expect(engine.setup(ctx, { check: false })).resolves.toMatchObject({ config: r.config });
});

test('a full and an incremental backup: both in the catalog, the window spans them, progress was reported', async () => {
  await cluster.query('CREATE TABLE IF NOT EXISTS rows AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 200000) AS g');
  const full = await engine.backup(ctx, 'full', 'engine-full');
  expect(full.type).toBe('full');
  expect(percents.length).toBeGreaterThan(0);
  await cluster.query('INSERT INTO rows SELECT g, md5(g::text) FROM generate_series(200001, 210000) AS g');
  const incr = await engine.backup(ctx, 'incr', 'engine-incr');
  expect(incr.type).toBe('incr');
  expect(incr.prior).toBe(full.label);
  const c = await engine.catalog(ctx);
  expect(c.backups.map((b) => b.type)).toEqual(['full', 'incr']);
  expect(Date.parse(c.window!.earliest)).toBe(Date.parse(full.stoppedAt) + 1000); // pgBackRest: a later whole second
  expect(c.archiver?.inRepository).toBe(true);
  expect(Date.parse(c.window!.latest)).toBeGreaterThanOrEqual(Date.parse(incr.stoppedAt));
});

test('a scratch restore to a time between two batches has the first batch and not the second, and leaves nothing behind', async () => {
  await cluster.query('CREATE TABLE IF NOT EXISTS batches (batch text, at timestamptz DEFAULT clock_timestamp())');
  await cluster.query("INSERT INTO batches (batch) VALUES ('A')");
  const t = parseTargetTime(await serverNow(engine.conn, 'postgres'));
  await new Promise((r) => setTimeout(r, 1500));
  await cluster.query("INSERT INTO batches (batch) VALUES ('B')");
  await switchAndWaitArchived(ctx, engine.conn, 'postgres', 60);
  const token = 'enginetest1';
  const r = await drillRestore(ctx, engine, token, t.pg, async (port) => {
    const rows = await cluster.query<{ batch: string }>('SELECT batch FROM batches ORDER BY batch', [], 'app', port);
    return { batches: rows.map((x) => x.batch.charCodeAt(0)) };
  });
  expect(r.found.batches).toEqual(['A'.charCodeAt(0)]);
  expect(Date.parse(r.lastReplayed!)).toBeLessThanOrEqual(t.ms);
  const s = scratchOf(engine, token);
  await expect(stat(s.dataDir)).rejects.toMatchObject({ code: 'ENOENT' });
  expect(await findProcesses(`--pg1-path=${s.dataDir}`)).toEqual([]);
  // The source server was never touched.
  expect(await cluster.pid()).toBeDefined();
});
