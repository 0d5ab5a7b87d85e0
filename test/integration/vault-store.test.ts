import { Readable } from 'node:stream';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load';
import { loadIdentities, readArtifact } from '../../src/repo/artifacts';
import type { ArtifactRecord } from '../../src/domain/manifest';
import { LifeboatError } from '../../src/errors';
import { VaultStore } from '../../src/stores/vault';
import { verifySnapshot } from '../../src/stores/vault/snapshot';
import { serverPids } from '../../src/stores/vault/server';
import { backupThroughPipeline, bucketEnv, quietCtx, restoreThroughPipeline, scopeFor, type PipelineBackup } from '../contract/bucket-kind';
import { bytesOf, editSnapshot, getSecret, putSecret, startTestBao, vaultTarget, type TestBao } from '../contract/vault-kind';
import { stackConfig } from '../helpers/env';

/**
 * The vault kind against real OpenBao servers: the stack's (read-only: a
 * snapshot is taken, nothing restored) and private ones this file starts,
 * into which it restores. Backups go through the real artifact pipeline
 * (age, MinIO).
 */
jest.setTimeout(300_000);

const { config } = bucketEnv('vaultstore');
let bao: TestBao;
const ctx = quietCtx();

async function plaintextOf(b: PipelineBackup): Promise<Buffer> {
  const scope = await scopeFor(config, 'vaultstore');
  return bytesOf(await readArtifact(scope.repo, b.key, b.record as ArtifactRecord, await loadIdentities(config.encryption)));
}

async function failure(p: Promise<unknown>): Promise<LifeboatError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof LifeboatError)) throw new Error(`expected a LifeboatError, got ${String(err)}`);
  return err;
}

beforeAll(async () => {
  bao = await startTestBao('vaultstore');
});
afterAll(async () => {
  await bao?.stop();
});

test("backs up the stack's own OpenBao with the snapshot token alone; the snapshot checks out offline", async () => {
  const target = stackConfig().targets.get('secrets-vault');
  expect(target).toBeDefined();
  const store = new VaultStore(stackConfig().file, target!);
  const probe = await store.probe(ctx);
  expect(probe.serverVersion).toBe('2.7.2');
  expect(probe.tools.bao).toBe('2.7.2');
  const b = await backupThroughPipeline(store, await scopeFor(config, 'vaultstore'));
  expect(b.record.encryption).toBe('age');
  expect(b.item).toMatchObject({ item: 'snapshot', name: 'snapshot', file: 'snapshot.snap', format: 'vault-raft-snapshot' });
  const facts = await verifySnapshot(Readable.from([await plaintextOf(b)]), 'from the repository');
  expect(facts.checked.sort()).toEqual(['meta.json', 'state.bin']);
  expect(facts.index).toBeGreaterThan(0);
  expect(b.item.meta).toMatchObject({ index: facts.index, term: facts.term, stateBytes: facts.stateBytes });
  expect(await store.inspect(ctx, b.item, Readable.from([await plaintextOf(b)]))).toMatch(/^raft snapshot at index \d+, term \d+: state\.bin \d+ bytes; SHA256SUMS of .* match/);
});

test('a damaged snapshot is refused with a message that says what is wrong', async () => {
  const store = new VaultStore(stackConfig().file, vaultTarget('damaged-vault', bao));
  const good = await plaintextOf(await backupThroughPipeline(store, await scopeFor(config, 'vaultstore')));
  const item = (await store.items())[0]!;
  const flipped = await editSnapshot(good, (f) => {
    const s = Buffer.from(f.get('state.bin')!);
    const at = Math.floor(s.length / 2);
    s[at] = s[at]! ^ 0xff;
    f.set('state.bin', s);
  });
  const cases: Array<[string, Buffer, RegExp]> = [
    ['a flipped byte in state.bin', flipped, /raft snapshot snapshot\.snap of target damaged-vault is damaged: state\.bin failed its checksum \(expected [0-9a-f]{12}…, got [0-9a-f]{12}…\); it cannot be restored/],
    ['a truncated file', good.subarray(0, good.length - 200), /is damaged: it ends early \(truncated\)/],
    ['no SHA256SUMS', await editSnapshot(good, (f) => f.delete('SHA256SUMS')), /is damaged: it has no SHA256SUMS/],
    ['meta.json not JSON', await editSnapshot(good, (f) => f.set('meta.json', Buffer.from('{nope'))), /is damaged: meta\.json is not JSON/],
    ['a file not in SHA256SUMS', await editSnapshot(good, (f) => f.set('extra.bin', Buffer.from('x'))), /is damaged: extra\.bin is not in SHA256SUMS/],
    ['not gzip at all', Buffer.from('this is not a snapshot'), /is damaged: it is not a gzip'd tar/],
  ];
  for (const [, bytes, message] of cases) {
    const err = await failure(store.inspect(ctx, item, Readable.from([bytes])));
    expect(err.type).toBe('SnapshotCorrupt');
    expect(store.isPermanent(err)).toBe(true);
    expect(err.message).toMatch(message);
  }
});

test('restore into its own server brings back a secret deleted after the backup and drops one written after it', async () => {
  const store = new VaultStore(stackConfig().file, vaultTarget('own-vault', bao));
  await putSecret(bao, 'app/jwt', { key: 'before-backup' });
  const scope = await scopeFor(config, 'vaultstore');
  const b = await backupThroughPipeline(store, scope);
  await bao.root('DELETE', 'secret/metadata/app/jwt');
  await putSecret(bao, 'app/new', { key: 'after-backup' });
  expect(await getSecret(bao, 'app/jwt')).toBeUndefined();
  expect(store.restoreNotice('snapshot')).toEqual({ approvalRequired: true, text: expect.stringMatching(/replaces the whole Vault server at http:\/\/127\.0\.0\.1:\d+ with the snapshot: every secret, policy, auth method, mount, token and lease/) });
  expect(store.restoreNotice('lifeboat-drill-0a1b2c3d')).toBeUndefined();
  await restoreThroughPipeline(store, scope, b, 'snapshot');
  expect(await getSecret(bao, 'app/jwt')).toEqual({ key: 'before-backup' });
  expect(await getSecret(bao, 'app/new')).toBeUndefined();
  // Same keyring: the server never sealed, and lifeboat's tokens still work.
  expect((await store.probe(ctx)).serverVersion).toBe('2.7.2');
});

test('a damaged snapshot never reaches the server: everything stays as it was', async () => {
  const store = new VaultStore(stackConfig().file, vaultTarget('own-vault', bao));
  const good = await plaintextOf(await backupThroughPipeline(store, await scopeFor(config, 'vaultstore')));
  await putSecret(bao, 'app/after', { v: 'still here' });
  const damaged = await editSnapshot(good, (f) => f.set('state.bin', Buffer.concat([f.get('state.bin')!, Buffer.from('tampered')])));
  const err = await failure(store.restore(ctx, (await store.items())[0]!, 'snapshot', Readable.from([damaged])));
  expect(err.type).toBe('SnapshotCorrupt');
  expect(await getSecret(bao, 'app/after')).toEqual({ v: 'still here' });
});

test('a restore token without snapshot-force is refused before anything is sent', async () => {
  const store = new VaultStore(stackConfig().file, vaultTarget('own-vault', bao, { restoreToken: { file: bao.file('drill-token') } }));
  await putSecret(bao, 'app/kept', { v: 1 });
  const good = await plaintextOf(await backupThroughPipeline(store, await scopeFor(config, 'vaultstore')));
  await putSecret(bao, 'app/kept', { v: 2 });
  const err = await failure(store.restore(ctx, (await store.items())[0]!, 'snapshot', Readable.from([good])));
  expect(err.type).toBe('PermissionDenied');
  expect(store.isPermanent(err)).toBe(true);
  expect(err.message).toMatch(/targets\.own-vault\.restoreToken may not restore snapshots .*lifeboat-restore policy .*Nothing was changed/);
  expect(await getSecret(bao, 'app/kept')).toEqual({ v: 2 });
});

test('disaster recovery onto a fresh server: it seals itself on the foreign keyring and is unsealed with the keys of the snapshot time', async () => {
  const store = new VaultStore(stackConfig().file, vaultTarget('dr-vault', bao));
  await putSecret(bao, 'app/dr', { v: 'from the old server' });
  const scope = await scopeFor(config, 'vaultstore');
  const b = await backupThroughPipeline(store, scope);
  const fresh = await startTestBao('vaultfresh');
  try {
    // The fresh server's root token restores; afterwards the old server's tokens and unseal key are the ones that count.
    const into = new VaultStore(stackConfig().file, vaultTarget('dr-vault', bao, { address: fresh.address, restoreToken: { file: fresh.file('root-token') } }));
    await restoreThroughPipeline(into, scope, b, 'snapshot');
    const r = await fresh.http.json<{ data: { data: Record<string, unknown> } }>({ method: 'GET', path: 'secret/data/app/dr', token: bao.rootToken, what: 'test read', signal: ctx.signal });
    expect(r.body!.data.data).toEqual({ v: 'from the old server' });
    expect((await fresh.http.json<{ sealed: boolean }>({ method: 'GET', path: 'sys/seal-status', what: 'test', signal: ctx.signal })).body!.sealed).toBe(false);
    expect((await into.probe(ctx)).serverVersion).toBe('2.7.2');
  } finally {
    await fresh.stop();
  }
  expect(await serverPids(fresh.configFile)).toEqual([]);
  expect(await serverPids(bao.configFile)).toHaveLength(1);
});

test('the config refuses credentials in the address, an inlined token and a misspelt setting, each with its fix', () => {
  const parse = (settings: Record<string, unknown>) =>
    parseConfig(stringify({ repository: { kind: 'local', path: '/nonexistent' }, encryption: 'none', targets: { v: { kind: 'vault', token: { file: '/run/t' }, ...settings } } }), '/etc/lifeboat.yaml');
  expect(() => parse({ address: 'https://user:pw@vault:8200' })).toThrow(/'targets\.v\.address' must not contain credentials/);
  expect(() => parse({ address: 'https://vault:8200/v1' })).toThrow(/'targets\.v\.address' must be scheme:\/\/host:port, without a path/);
  expect(() => parse({ token: 's.abcdef' })).toThrow(/'targets\.v\.token' must reference the secret, not contain it/);
  expect(() => parse({ unsealKey: [{ file: '/k' }] })).toThrow(/unknown setting 'unsealKey' \(did you mean 'unsealKeys'\?\)/);
  expect(() => parse({ scratch: { maxAge: '10s' } })).toThrow(/'targets\.v\.scratch\.maxAge' must be a duration of at least a minute/);
  const t = parse({ unsealKeys: [{ file: 'k1' }], scratch: { maxAge: '2h' } }).targets.get('v')!;
  expect(new VaultStore('/etc/lifeboat.yaml', t).restoreNotice('snapshot')?.text).toMatch(/http:\/\/127\.0\.0\.1:8200/);
});
