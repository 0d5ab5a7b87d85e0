import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parse, stringify } from 'yaml';
import type { Config, S3RepositoryConfig } from '../../src/config';
import { artifactKey } from '../../src/domain/layout';
import type { BackupResult, DrillResult, PruneResult, RestoreResult, VerifyResult } from '../../src/domain/plan';
import { desiredSchedules } from '../../src/domain/schedules';
import { openRepository } from '../../src/repo';
import { loadIdentities, readArtifact, storeArtifact } from '../../src/repo/artifacts';
import { readManifest, writeManifest } from '../../src/repo/catalog';
import { serverPids } from '../../src/stores/vault/server';
import { adminClient, removePrefix } from '../contract/bucket-kind';
import { bytesOf, editSnapshot, getSecret, putSecret, serversBelow, startTestBao, vaultSettingsFor, vaultTarget, type TestBao } from '../contract/vault-kind';
import { lifeboat } from '../helpers/cli';
import { signingKeyOf, testEnv, trustOf, withTaskQueue } from '../helpers/env';
import { startHarness, type Harness } from '../helpers/temporal';

/** The vault kind through the real workflows (a real worker, Temporal, MinIO, age) and the CLI, on a private OpenBao. */
jest.setTimeout(600_000);

const env = testEnv('vaultwf');
const T = 'secrets-vault';
let bao: TestBao;
let config: Config;
let h: Harness;
let dir: string;
let configFile: string;

beforeAll(async () => {
  bao = await startTestBao('vaultwf');
  config = withTaskQueue({ ...env.config, targets: new Map([[T, vaultTarget(T, bao)]]) }, env.taskQueue);
  h = await startHarness(config);
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-vaultwf-'));
  const base = parse(await readFile(process.env.LIFEBOAT_CONFIG!, 'utf8')) as Record<string, Record<string, unknown>>;
  configFile = join(dir, 'lifeboat.yaml');
  const repository = { ...base.repository, prefix: (env.config.repository as S3RepositoryConfig).prefix };
  await writeFile(configFile, stringify({ ...base, temporal: { ...base.temporal, taskQueue: env.taskQueue }, repository, targets: { [T]: vaultSettingsFor(bao) }, schedules: { idPrefix: env.config.schedules!.idPrefix } }));
});
afterAll(async () => {
  await h?.stop();
  await bao?.stop();
  await rm(dir, { recursive: true, force: true });
  const repo = env.config.repository as S3RepositoryConfig;
  await removePrefix(await adminClient(repo), repo.bucket, `${repo.prefix}/`);
});

test('scratch drill: the 61 markers come back in a temporary server, which is gone afterwards', async () => {
  const r = await h.run<DrillResult>('drillWorkflow', { mode: 'scratch' });
  expect(r.ok).toBe(true);
  expect(r.stores[0]).toMatchObject({ target: T, kind: 'vault', markers: { expected: 61, found: 61, missing: [], unexpected: 0 } });
  expect(await serversBelow(join(bao.dir, 'scratch'))).toEqual([]);
  expect(await readdir(join(bao.dir, 'scratch', T))).toEqual([]);
  expect(await serverPids(bao.configFile)).toHaveLength(1);
});

test('an in-place drill of a Vault target drills a scratch copy: replacing the whole server is never a drill', async () => {
  const r = await h.run<DrillResult>('drillWorkflow', { mode: 'in-place' });
  expect(r.ok).toBe(true);
  expect(r.stores[0]).toMatchObject({ mode: 'scratch', markers: { expected: 61, found: 61, unexpected: 0 } });
  expect(await serverPids(bao.configFile)).toHaveLength(1);
});

test('restore workflow into the server brings back a secret deleted after the backup', async () => {
  await putSecret(bao, 'app/signing-key', { pem: 'before' });
  const b = await h.run<BackupResult>('backupWorkflow', { targets: [T] });
  await bao.root('DELETE', 'secret/metadata/app/signing-key');
  // A Vault restore replaces the whole server: --yes is not enough, the plan waits for the approve signal and says why.
  const { handle, result } = await h.start<RestoreResult>('restoreWorkflow', { backupId: b.backupId, targets: [T], yes: true });
  for (let i = 0; i < 300 && (await handle.query<{ stage: string }>('progress')).stage !== 'awaiting approval'; i++) await new Promise((r) => setTimeout(r, 100));
  const waiting = await handle.query<{ stage: string; detail: string }>('progress');
  expect(waiting.stage).toBe('awaiting approval');
  expect(waiting.detail).toContain('replace');
  await handle.signal('approve', { by: 'vault-admin' });
  const r = await result;
  expect(r.approvedBy).toBe('vault-admin');
  expect(r.targets[0]!.restored).toEqual([{ name: 'snapshot', into: 'snapshot' }]);
  expect(await getSecret(bao, 'app/signing-key')).toEqual({ pem: 'before' });
});

test('verify checks the snapshot offline; a damaged one fails verify with the reason', async () => {
  const b = await h.run<BackupResult>('backupWorkflow', { targets: [T] });
  const repo = await openRepository(config);
  const m = await readManifest(repo, T, b.backupId, trustOf(config));
  expect(m).toMatchObject({ kind: 'vault', server: { version: '2.7.2' } });
  expect(m.artifacts).toHaveLength(1);
  expect(m.artifacts[0]).toMatchObject({ item: 'snapshot', name: 'snapshot', file: 'snapshot.snap.age', format: 'vault-raft-snapshot', encryption: 'age', meta: { index: expect.any(Number), term: expect.any(Number) } });
  const ok = await h.run<VerifyResult>('verifyWorkflow', { backupId: b.backupId, targets: [T] });
  expect(ok.ok).toBe(true);
  expect(ok.targets[0]!.artifacts[0]!.detail).toMatch(/^raft snapshot at index \d+, term \d+: .*SHA256SUMS of .* match/);

  // A snapshot that was damaged before it was encrypted: the artifact itself is intact, the snapshot inside is not.
  const key = artifactKey(T, b.backupId, 'snapshot.snap.age');
  const plain = await bytesOf(await readArtifact(repo, key, m.artifacts[0]!, await loadIdentities(config.encryption)));
  const damaged = await editSnapshot(plain, (f) => f.set('state.bin', Buffer.concat([f.get('state.bin')!.subarray(0, 100), Buffer.alloc(16), f.get('state.bin')!.subarray(116)])));
  const stored = await storeArtifact(repo, key, Readable.from([damaged]), config.encryption);
  await writeManifest(repo, { ...m, artifacts: [{ ...m.artifacts[0]!, sha256: stored.sha256, bytes: stored.bytes }] }, await signingKeyOf(config));
  const bad = await h.run<VerifyResult>('verifyWorkflow', { backupId: b.backupId, targets: [T] });
  expect(bad.ok).toBe(false);
  expect(bad.targets[0]!.artifacts[0]!.error).toEqual({ type: 'ArtifactUnreadable', message: expect.stringMatching(/raft snapshot snapshot\.snap\.age of target secrets-vault is damaged: state\.bin failed its checksum/) });
});

test('ls, report, prune and the schedules know the kind', async () => {
  const ls = await lifeboat(configFile, '--json', 'ls');
  expect(ls.code).toBe(0);
  const rows = (JSON.parse(ls.stdout) as { backups: Array<{ target: string; kind: string; serverVersion: string }> }).backups;
  expect(rows.length).toBeGreaterThan(0);
  expect(rows.every((r) => r.target === T && r.kind === 'vault' && r.serverVersion === '2.7.2')).toBe(true);
  const report = await lifeboat(configFile, '--json', 'report');
  expect(report.code).toBe(0);
  expect(report.stdout).toContain(T);
  const prune = await h.run<PruneResult>('pruneWorkflow', { targets: [T], dryRun: true });
  expect(prune.targets[0]!.target).toBe(T);
  expect(prune.targets[0]!.kept.length + prune.targets[0]!.deleted.length).toBe(rows.length);
  const s = desiredSchedules([
    { name: 'app-pg', kind: 'postgres' },
    { name: T, kind: 'vault' },
    { name: 'other-vault', kind: 'vault' },
  ]).filter((x) => x.kind === 'backup');
  expect(s.map((x) => [x.target, x.cron, x.description])).toEqual([
    ['app-pg', '0 2 * * *', 'nightly backup of app-pg (postgres)'],
    [T, '15 * * * *', `hourly backup of ${T} (vault)`],
    ['other-vault', '25 * * * *', 'hourly backup of other-vault (vault)'],
  ]);
});
