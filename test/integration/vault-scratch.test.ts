import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LifeboatError } from '../../src/errors';
import type { BackupItem, Progress, StoreContext } from '../../src/stores';
import { VaultStore } from '../../src/stores/vault';
import { serverPids } from '../../src/stores/vault/server';
import { quietCtx } from '../contract/bucket-kind';
import { bytesOf, editSnapshot, putSecret, serversBelow, startTestBao, vaultTarget, type TestBao } from '../contract/vault-kind';
import { stackConfig } from '../helpers/env';

/**
 * Scratch restores of the vault kind: a temporary OpenBao on this host that
 * holds the snapshot, answers the production tokens of the backup's time,
 * and is gone (process and folder) after a drop, also when the process that
 * was restoring into it was killed with SIGKILL half-way.
 */
jest.setTimeout(300_000);

const DIST = join(__dirname, '../../dist');
let bao: TestBao;
let store: VaultStore;
let item: BackupItem;
let snapshot: Buffer;
let snapshotFile: string;
let scratchDir: string;
const nonce = 'scratch-test-nonce';
const ctx = quietCtx();

/** Runs a restore into `name` in another process that reads the snapshot slowly, and SIGKILLs it once the snapshot is being posted. */
async function crashedRestore(name: string): Promise<Progress> {
  const script = `
    const { VaultStore } = require(${JSON.stringify(join(DIST, 'stores/vault'))});
    const { Readable } = require('node:stream');
    const fs = require('node:fs');
    const [configFile, target, file, name] = process.argv.slice(1);
    const store = new VaultStore(configFile, JSON.parse(target));
    const ctx = { signal: new AbortController().signal, progress: (p) => process.stdout.write(JSON.stringify(p) + '\\n'), log: { info() {}, warn() {} } };
    async function* slow() {
      const buf = fs.readFileSync(file);
      for (let i = 0; i < buf.length; i += 2048) { yield buf.subarray(i, i + 2048); await new Promise((r) => setTimeout(r, 300)); }
    }
    store.items().then(([item]) => store.restore(ctx, item, name, Readable.from(slow()))).then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });
  `;
  const target = JSON.stringify(vaultTarget('scratch-vault', bao));
  const child = spawn(process.execPath, ['-e', script, stackConfig().file, target, snapshotFile, name], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        const p = JSON.parse(l) as Progress;
        if (p.stage === 'restore') {
          child.once('exit', () => resolve(p));
          child.kill('SIGKILL');
        }
      }
    });
    child.on('exit', (code, sig) => sig !== 'SIGKILL' && reject(new Error(`the restoring process ended by itself (${code}) before the kill point: ${stderr}`)));
  });
}

async function leftovers(): Promise<{ servers: string[]; folders: string[] }> {
  const folders = await readdir(join(scratchDir, 'scratch-vault')).catch(() => [] as string[]);
  return { servers: await serversBelow(scratchDir), folders };
}

async function failure(p: Promise<unknown>): Promise<LifeboatError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof LifeboatError)) throw new Error(`expected a LifeboatError, got ${String(err)}`);
  return err;
}

beforeAll(async () => {
  if (!existsSync(join(DIST, 'stores/vault/index.js'))) throw new Error('run `npm run build` first: this test restores in a process of its own');
  bao = await startTestBao('vaultscratch');
  scratchDir = join(bao.dir, 'scratch');
  store = new VaultStore(stackConfig().file, vaultTarget('scratch-vault', bao));
  await putSecret(bao, 'app/db', { password: 'from production' });
  await store.seedMarkers(ctx, 'snapshot', 61, nonce);
  item = (await store.items())[0]!;
  await store.backup(ctx, item!, async (s) => {
    snapshot = await bytesOf(s);
  });
  snapshotFile = join(bao.dir, 'snapshot.snap');
  await writeFile(snapshotFile, snapshot, { mode: 0o600 });
});
afterAll(async () => {
  await bao?.stop();
});

test('restores into a temporary server that answers the production tokens; a drop leaves no process and no folder', async () => {
  const name = store.scratchName('0a1b2c3d');
  expect(name).toBe('lifeboat-drill-0a1b2c3d');
  const stages: string[] = [];
  const c: StoreContext = { ...ctx, progress: (p) => stages.push(p.stage) };
  await store.restore(c, item, name, Readable.from([snapshot]));
  expect(stages).toEqual(['start scratch server', 'restore', 'unseal']);
  expect((await store.countMarkers(ctx, name, nonce)).found).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
  expect((await store.countMarkers(ctx, name, 'other-nonce')).found).toEqual([]);
  const state = JSON.parse(await readFile(join(scratchDir, 'scratch-vault', name, 'state.json'), 'utf8')) as { address: string; ready: boolean };
  expect(state.ready).toBe(true);
  expect(state.address).not.toBe(bao.address);
  const config = await readFile(join(scratchDir, 'scratch-vault', name, 'server.hcl'), 'utf8');
  expect(config).toMatch(/disable_mlock = true/);
  expect(config).not.toMatch(/token|key/i);
  expect((await leftovers()).servers).toHaveLength(1);
  await store.drop(ctx, name);
  await store.drop(ctx, name);
  expect(await leftovers()).toEqual({ servers: [], folders: [] });
  // The production server was not touched, and its markers are still there.
  expect(await serverPids(bao.configFile)).toHaveLength(1);
  expect((await store.countMarkers(ctx, 'snapshot', nonce)).found).toHaveLength(61);
  const gone = await failure(store.countMarkers(ctx, name, nonce));
  expect(gone.type).toBe('ScratchMissing');
});

test('a restoring process killed half-way leaves a server that a drop, or the retried restore, stops and deletes', async () => {
  const name = store.scratchName('dead0001');
  await crashedRestore(name);
  expect((await leftovers()).servers).toHaveLength(1);
  expect(JSON.parse(await readFile(join(scratchDir, 'scratch-vault', name, 'state.json'), 'utf8'))).toMatchObject({ name, ready: false });
  await store.drop(ctx, name);
  expect(await leftovers()).toEqual({ servers: [], folders: [] });

  await crashedRestore(name);
  expect((await leftovers()).servers).toHaveLength(1);
  await store.restore(ctx, item, name, Readable.from([snapshot]));
  expect((await leftovers()).servers).toHaveLength(1);
  expect((await store.countMarkers(ctx, name, nonce)).found).toHaveLength(61);
  await store.drop(ctx, name);
  expect(await leftovers()).toEqual({ servers: [], folders: [] });
  expect(await serverPids(bao.configFile)).toHaveLength(1);
});

test('a temporary server left by a dead worker is found and removed once it is old; a young running one is left alone', async () => {
  const stale = store.scratchName('01d00001');
  const young = store.scratchName('f00d0001');
  await store.restore(ctx, item, young, Readable.from([snapshot]));
  await crashedRestore(stale);
  const stateFile = join(scratchDir, 'scratch-vault', stale, 'state.json');
  const state = JSON.parse(await readFile(stateFile, 'utf8')) as { createdAt: string };
  await writeFile(stateFile, JSON.stringify({ ...state, createdAt: new Date(Date.now() - 7 * 3600_000).toISOString() }));
  expect((await leftovers()).servers).toHaveLength(2);
  await store.drop(ctx, store.scratchName('0ther001'));
  expect((await leftovers()).folders).toEqual([young]);
  expect((await leftovers()).servers).toHaveLength(1);
  expect((await store.countMarkers(ctx, young, nonce)).found).toHaveLength(61);
  await store.drop(ctx, young);
  expect(await leftovers()).toEqual({ servers: [], folders: [] });
});

test('a damaged snapshot fails the scratch restore and leaves nothing behind', async () => {
  const name = store.scratchName('bad00001');
  const damaged = await editSnapshot(snapshot, (f) => f.set('meta.json', Buffer.from('{"Index":"x"}')));
  const err = await failure(store.restore(ctx, item, name, Readable.from([damaged])));
  expect(err.type).toBe('SnapshotCorrupt');
  expect(err.message).toMatch(/meta\.json lacks a whole-number Index, Term or Version/);
  expect(await leftovers()).toEqual({ servers: [], folders: [] });
});

test('refuses a scratch folder that others may write to, and names that are neither the server nor a scratch', async () => {
  const open = join(bao.dir, 'open-scratch');
  await mkdir(open, { mode: 0o777 });
  const { chmod } = await import('node:fs/promises');
  await chmod(open, 0o777);
  const s = new VaultStore(stackConfig().file, vaultTarget('scratch-vault', bao, { scratch: { dir: open } }));
  const err = await failure(s.restore(ctx, item, s.scratchName('0a0a0a0a'), Readable.from([snapshot])));
  expect(err.message).toMatch(/scratch folder .*open-scratch of target scratch-vault is open to others \(mode 777\).*chmod 700/);
  expect(await serversBelow(open)).toEqual([]);
  const bad = await failure(store.restore(ctx, item, 'prod', Readable.from([snapshot])));
  expect(bad.type).toBe('InvalidName');
  expect(bad.message).toMatch(/restores into its own server, named 'snapshot', or into a temporary server named 'lifeboat-drill-<hex>'; 'prod' is neither/);
});
