import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BackupItem } from '../../src/stores';
import { RedisStore } from '../../src/stores/redis';
import { quietCtx } from '../contract/bucket-kind';
import { redisTarget, startTestRedis, type TestRedis } from '../contract/redis-kind';
import { stackConfig } from '../helpers/env';

/**
 * Scratch servers: a restore under another name starts a temporary
 * redis-server from the RDB; the drill counts its markers (with their TTLs)
 * and drops it. Proven here: nothing of it — process or folder — is left
 * after a drop, after a second restore of the same name, or after the
 * process that started it was killed (a new process finds and stops it);
 * and a drop touches no other server.
 */
jest.setTimeout(180_000);

const DIST = join(__dirname, '../../dist/stores/redis/index.js');
let source: TestRedis;
let root: string;
let rdb: Buffer;
let item: BackupItem;

function storeAt(scratchDir: string): RedisStore {
  return new RedisStore(stackConfig().file, redisTarget('cache-redis', { port: source.port, password: { file: source.passwordFile }, scratchDir }));
}

/** Processes whose argv names a file under `dir` (a scratch server of that folder). */
async function processesUnder(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const argv = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (argv.split('\0').some((a) => a.startsWith(`${dir}/`))) out.push(Number(e));
  }
  return out;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'lifeboat-redis-scratch-test-'));
  source = await startTestRedis();
  const store = storeAt(join(root, 'scratch'));
  await store.seedMarkers(quietCtx(), 'dataset', 97, 'nonce-scratch');
  const c = source.client();
  await c.select(9);
  await c.set('in-db-9', 'yes');
  c.disconnect();
  item = (await store.items())[0]!;
  const chunks: Buffer[] = [];
  await store.backup(quietCtx(), item!, async (s) => {
    for await (const b of s) chunks.push(b as Buffer);
  });
  rdb = Buffer.concat(chunks);
});

afterAll(async () => {
  await source?.remove();
  await rm(root, { recursive: true, force: true });
});

test('a scratch restore starts a private server with every marker and TTL; drop leaves no process and no folder', async () => {
  const dir = join(root, 'scratch');
  const store = storeAt(dir);
  await store.restore(quietCtx(), item, 'lifeboat_drill_aa11', Readable.from([rdb]));
  const folder = join(dir, 'cache-redis', 'lifeboat_drill_aa11');
  expect((await readFile(join(folder, 'redis.conf'), 'utf8')).match(/^(bind|save|appendonly) .*$/gm)).toEqual(['bind 127.0.0.1', 'appendonly no', 'save ""']);
  expect((await import('node:fs')).statSync(join(folder, 'redis.conf')).mode & 0o777).toBe(0o600);
  expect((await import('node:fs')).statSync(dir).mode & 0o777).toBe(0o700);
  expect(await processesUnder(folder)).toHaveLength(1);
  const found = (await store.countMarkers(quietCtx(), 'lifeboat_drill_aa11', 'nonce-scratch')).found;
  expect(found).toEqual(Array.from({ length: 97 }, (_, i) => i + 1));
  // The source is untouched; a marker whose TTL was lost does not count.
  expect((await store.countMarkers(quietCtx(), 'dataset', 'nonce-scratch')).found).toHaveLength(97);
  const ep = await (store as unknown as { scratch: { endpoint(n: string): Promise<{ port: number; password: string }> } }).scratch.endpoint('lifeboat_drill_aa11');
  const { Redis } = await import('ioredis');
  const c = new Redis({ port: ep.port, password: ep.password, protocol: 2 });
  await c.persist('lifeboat:drill:nonce-scratch:3');
  await c.select(9);
  expect(await c.get('in-db-9')).toBe('yes');
  c.disconnect();
  expect((await store.countMarkers(quietCtx(), 'lifeboat_drill_aa11', 'nonce-scratch')).found).not.toContain(3);

  await store.drop(quietCtx(), 'lifeboat_drill_aa11');
  await store.drop(quietCtx(), 'lifeboat_drill_aa11'); // idempotent
  expect(existsSync(folder)).toBe(false);
  expect(await processesUnder(folder)).toEqual([]);
  expect((await store.countMarkers(quietCtx(), 'lifeboat_drill_aa11', 'nonce-scratch')).found).toEqual([]);
});

test('a second restore of the same name replaces the first server; dropping one scratch touches no other server', async () => {
  const dir = join(root, 'scratch2');
  const store = storeAt(dir);
  await store.restore(quietCtx(), item, 'lifeboat_drill_bb22', Readable.from([rdb]));
  const first = await processesUnder(join(dir, 'cache-redis', 'lifeboat_drill_bb22'));
  await store.restore(quietCtx(), item, 'lifeboat_drill_bb22', Readable.from([rdb]));
  const second = await processesUnder(join(dir, 'cache-redis', 'lifeboat_drill_bb22'));
  expect(second).toHaveLength(1);
  expect(second).not.toEqual(first);
  await store.restore(quietCtx(), item, 'lifeboat_drill_cc33', Readable.from([rdb]));
  await store.drop(quietCtx(), 'lifeboat_drill_bb22');
  expect(await processesUnder(join(dir, 'cache-redis', 'lifeboat_drill_bb22'))).toEqual([]);
  expect((await store.countMarkers(quietCtx(), 'lifeboat_drill_cc33', 'nonce-scratch')).found).toHaveLength(97);
  const c = source.client();
  expect(await c.ping()).toBe('PONG');
  c.disconnect();
  await store.drop(quietCtx(), 'lifeboat_drill_cc33');
  expect(await readdir(join(dir, 'cache-redis'))).toEqual([]);
});

/** Runs a scratch restore in a process of its own (the built store), which the test kills. */
function restoreInChild(scratchDir: string, name: string, rdbFile: string, stallAfter?: number) {
  const target = redisTarget('cache-redis', { port: source.port, password: { file: source.passwordFile }, scratchDir });
  const script = `
    const fs = require('node:fs'); const { Readable } = require('node:stream');
    const { RedisStore } = require(${JSON.stringify(DIST)});
    const store = new RedisStore(${JSON.stringify(stackConfig().file)}, ${JSON.stringify(target)});
    const bytes = fs.readFileSync(${JSON.stringify(rdbFile)});
    const stall = ${stallAfter ?? -1};
    const source = stall < 0 ? Readable.from([bytes]) : new Readable({ read() { if (!this.sent) { this.sent = true; this.push(bytes.subarray(0, stall)); } } });
    const ctx = { signal: new AbortController().signal, progress() {}, log: { info() {}, warn() {} } };
    setInterval(() => {}, 1000); // alive until killed, like a worker
    store.restore(ctx, ${JSON.stringify(item)}, ${JSON.stringify(name)}, source).then(() => process.stdout.write('restored\\n'), (e) => process.stdout.write('failed ' + e.message + '\\n'));
  `;
  return spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function until(ok: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('after the process that restored it was killed, a new one finds the scratch server and drops it', async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run 'npm run build' first`);
  const dir = join(root, 'scratch3');
  const rdbFile = join(root, 'dump.rdb');
  await writeFile(rdbFile, rdb);
  const folder = join(dir, 'cache-redis', 'lifeboat_drill_dd44');

  // Killed once its server runs: the server (detached) outlives it.
  const child = restoreInChild(dir, 'lifeboat_drill_dd44', rdbFile);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  await until(() => out.includes('restored'), 'the child to restore');
  child.kill('SIGKILL');
  expect(await processesUnder(folder)).toHaveLength(1);
  await storeAt(dir).drop(quietCtx(), 'lifeboat_drill_dd44');
  expect(await processesUnder(folder)).toEqual([]);
  expect(existsSync(folder)).toBe(false);

  // Killed half-way through writing the RDB: a folder, no server; a retry of the restore starts clean.
  const stalled = restoreInChild(dir, 'lifeboat_drill_dd44', rdbFile, Math.floor(rdb.length / 2));
  await until(() => existsSync(join(folder, 'dump.rdb')), 'the half-written RDB');
  const gone = new Promise((r) => (stalled.exitCode !== null || stalled.signalCode !== null ? r(undefined) : stalled.once('exit', r)));
  stalled.kill('SIGKILL');
  await gone;
  expect(existsSync(folder)).toBe(true);
  const store = storeAt(dir);
  await store.restore(quietCtx(), item, 'lifeboat_drill_dd44', Readable.from([rdb]));
  expect((await store.countMarkers(quietCtx(), 'lifeboat_drill_dd44', 'nonce-scratch')).found).toHaveLength(97);
  await store.drop(quietCtx(), 'lifeboat_drill_dd44');
  expect(await processesUnder(dir)).toEqual([]);
  expect(await readdir(join(dir, 'cache-redis'))).toEqual([]);
});

test('a scratch restore of a damaged RDB fails and leaves nothing behind', async () => {
  const dir = join(root, 'scratch4');
  const store = storeAt(dir);
  const err = (await store.restore(quietCtx(), item, 'lifeboat_drill_ee55', Readable.from([rdb.subarray(0, rdb.length - 30)])).catch((e: unknown) => e)) as Error & { type: string };
  expect(err.type).toBe('RdbCorrupt');
  expect(existsSync(join(dir, 'cache-redis', 'lifeboat_drill_ee55'))).toBe(false);
});

test('sweep at worker start removes half-made scratch folders and orphaned temporary RDBs, and leaves running copies alone', async () => {
  const dir = join(root, 'scratch5');
  const store = storeAt(dir);
  await store.restore(quietCtx(), item, 'lifeboat_drill_ff66', Readable.from([rdb]));
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(dir, 'cache-redis', 'lifeboat_drill_dead'), { recursive: true });
  await writeFile(join(dir, 'cache-redis', 'lifeboat_drill_dead', 'dump.rdb'), rdb.subarray(0, 100));
  const swept = await store.sweep();
  expect(swept).toEqual([`removed the scratch folder ${join(dir, 'cache-redis', 'lifeboat_drill_dead')} of a restore whose worker died`]);
  expect((await store.countMarkers(quietCtx(), 'lifeboat_drill_ff66', 'nonce-scratch')).found).toHaveLength(97);
  await store.drop(quietCtx(), 'lifeboat_drill_ff66');

  // A file-mode target: temporary RDBs of dead processes go, those of live ones stay.
  const data = join(root, 'data');
  await mkdir(data, { recursive: true });
  await writeFile(join(data, '.lifeboat-restore-999999999-abc.rdb'), 'x');
  await writeFile(join(data, `.lifeboat-restore-${process.pid}-def.rdb`), 'x');
  await writeFile(join(data, 'dump.rdb'), 'x');
  const fileStore = new RedisStore(
    stackConfig().file,
    redisTarget('cache-redis', { port: source.port, password: { file: source.passwordFile }, scratchDir: dir, restore: { mode: 'file', dir: data, stop: { command: ['true'] }, start: { command: ['true'] } } }),
  );
  expect(await fileStore.sweep()).toEqual([`removed ${join(data, '.lifeboat-restore-999999999-abc.rdb')}, an RDB a restore was writing when its worker died`]);
  expect((await readdir(data)).sort()).toEqual([`.lifeboat-restore-${process.pid}-def.rdb`, 'dump.rdb']);
});
