import { PutObjectCommand } from '@aws-sdk/client-s3';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Config, S3RepositoryConfig } from '../../src/config';
import { generateSigningKey, loadSigningKey } from '../../src/crypto/sign';
import { artifactKey, manifestKey, signatureKey, sidecarKey, sidecarText } from '../../src/domain/layout';
import { makeBackupId } from '../../src/domain/names';
import type { BackupResult, PruneResult, RestoreResult, VerifyResult } from '../../src/domain/plan';
import { openRepository, type Repository } from '../../src/repo';
import { loadManifest, readManifest, writeManifest } from '../../src/repo/catalog';
import { s3Client } from '../../src/repo/s3';
import { lifeboat } from '../helpers/cli';
import { writeConfigFile } from '../helpers/config-file';
import { testEnv, trustOf, withTaskQueue } from '../helpers/env';
import { countRows, createDatabase, dropDatabase, pg, seedApp } from '../helpers/pg';
import { failureOf, startHarness, type Harness } from '../helpers/temporal';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Someone who can write to the repository cannot make lifeboat restore
 * something else: manifests are signed, what is restored is what was
 * verified, and a damaged manifest never costs a good backup.
 */
jest.setTimeout(240_000);
const env = testEnv('trust', { databases: 2 });
// The big database comes first in the manifest (config order): it restores while the small one's artifact is swapped.
const [big, db] = env.databases as [string, string];
const config: Config = { ...withTaskQueue(env.config, env.taskQueue), retention: { keepLast: 1, daily: 0, weekly: 0, monthly: 0 } };
const repoCfg = config.repository as S3RepositoryConfig;
let h: Harness;
let repo: Repository;
let dir: string;

const newId = () => makeBackupId(new Date(), randomBytes(2).toString('hex'));
async function backup(): Promise<string> {
  const backupId = newId();
  await h.run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  return backupId;
}
const putRaw = async (key: string, body: Buffer | string) => (await s3Client(repoCfg)).send(new PutObjectCommand({ Bucket: repoCfg.bucket, Key: `${repoCfg.prefix}/${key}`, Body: body }));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-trust-'));
  await createDatabase(config, db);
  await seedApp(config, db, 100);
  await createDatabase(config, big);
  await seedApp(config, big, 400_000);
  h = await startHarness(config);
  repo = await openRepository(config);
});

afterAll(async () => {
  await h?.stop();
  await dropDatabase(config, db);
  await dropDatabase(config, big);
  await rm(dir, { recursive: true, force: true });
});

test('an artifact replaced by a dump sealed with the stock age tool to the public recipient, its checksum rewritten in the manifest, is refused: the signature no longer matches', async () => {
  const backupId = await backup();
  const m = await readManifest(repo, 'app-pg', backupId, trustOf(config));
  const art = m.artifacts.find((a) => a.name === db)!;
  // The attacker's dump: any database, sealed with stock age to the (public) recipient.
  const forged = execFileSync('age', ['-r', config.encryption!.recipients[0]!], { input: Buffer.from('PGDMP forged dump') });
  const sha = (await import('node:crypto')).createHash('sha256').update(forged).digest('hex');
  await putRaw(artifactKey('app-pg', backupId, art.file), forged);
  await putRaw(sidecarKey(artifactKey('app-pg', backupId, art.file)), sidecarText(sha, art.file));
  const text = `${JSON.stringify({ ...m, artifacts: m.artifacts.map((a) => (a === art ? { ...a, sha256: sha, bytes: forged.length } : a)) }, null, 2)}\n`;
  await putRaw(manifestKey('app-pg', backupId), text);
  const rows = await countRows(config, db);

  const f = await failureOf(h.run('restoreWorkflow', { backupId, yes: true }));
  expect(f.type).toBe('SignatureInvalid');
  expect(f.message).toContain(`manifest s3://${repoCfg.bucket}/${repoCfg.prefix}/${manifestKey('app-pg', backupId)} is not authentic: its signature by lifeboat-ed25519:`);
  expect(f.message).toContain('does not match its contents');
  expect(await countRows(config, db)).toBe(rows);
  const v = await failureOf(h.run<VerifyResult>('verifyWorkflow', { backupId }));
  expect(v.type).toBe('SignatureInvalid');
});

test('a manifest signed by a key the config does not trust, or not signed at all, is refused; --allow-unsigned reads old unsigned backups', async () => {
  const backupId = await backup();
  const m = await readManifest(repo, 'app-pg', backupId, trustOf(config));
  // Signed by the attacker's own key.
  const pem = join(dir, 'attacker.pem');
  await writeFile(pem, generateSigningKey().pem, { mode: 0o600 });
  await writeManifest(repo, m, await loadSigningKey(pem));
  const f = await failureOf(h.run('restoreWorkflow', { backupId, yes: true }));
  expect(f.type).toBe('SignatureInvalid');
  expect(f.message).toContain('which is not one of the trusted signing.publicKeys');

  // No signature: what a backup from before signing looks like.
  await repo.delete([signatureKey('app-pg', backupId)]);
  await writeManifest(repo, m);
  expect((await loadManifest(repo, 'app-pg', backupId, config.signing!.publicKeys)).signature).toEqual({ state: 'unsigned' });
  const u = await failureOf(h.run('restoreWorkflow', { backupId, yes: true }));
  expect(u.type).toBe('ManifestUnsigned');
  expect(u.message).toContain('pass --allow-unsigned');
  const r = await h.run<RestoreResult>('restoreWorkflow', { backupId, yes: true, allowUnsigned: true, only: { 'app-pg': [db] } });
  expect(r.targets[0]!.restored).toEqual([{ name: db, into: db }]);

  // The CLI says the same, and lists the backup as unsigned.
  const file = await writeConfigFile(dir, env);
  const ls = JSON.parse((await lifeboat(file, 'ls', '--json')).stdout) as { backups: Array<{ backupId: string; signature: { state: string } }> };
  expect(ls.backups.find((b) => b.backupId === backupId)!.signature).toEqual({ state: 'unsigned' });
});

test('an artifact swapped after it was verified is never restored: the restore reads exactly the object it verified', async () => {
  const backupId = newId();
  await h.run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  const other = await backup(); // a genuine, differently-dated artifact of the same database
  const m = await readManifest(repo, 'app-pg', backupId, trustOf(config));
  const small = m.artifacts.find((a) => a.name === db)!;
  const chunks: Buffer[] = [];
  for await (const c of await repo.get(artifactKey('app-pg', other, small.file))) chunks.push(c as Buffer);
  await pg(config, db, (c) => c.query("INSERT INTO tenants (name) VALUES ('after-the-backup')"));
  const rows = await countRows(config, db);

  // The big database is restored first; while it restores, the small one's artifact (already verified) is swapped.
  const { handle, result } = await h.start<RestoreResult>('restoreWorkflow', { backupId, yes: true, only: { 'app-pg': [big, db] } });
  for (let i = 0; i < 600; i++) {
    const p = await handle.query<{ stage: string; detail?: string }>('progress');
    if (p.stage === 'restore' && p.detail?.includes(big)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await putRaw(artifactKey('app-pg', backupId, small.file), Buffer.concat(chunks));
  const f = await failureOf(result);
  expect(f.type).toBe('ArtifactChanged');
  expect(f.message).toContain(`${artifactKey('app-pg', backupId, small.file)} was replaced after it was verified`);
  expect(f.message).toContain(`already changed: app-pg/${big} restored from backup ${backupId}`);
  expect(await countRows(config, db)).toBe(rows); // never dropped, never restored from the swapped object
});

test('a damaged newest manifest is listed as damaged and never makes prune delete a restorable backup', async () => {
  const ids = [await backup(), await backup(), await backup()];
  await putRaw(manifestKey('app-pg', ids[2]!), '{ "schema": 1, "backupId": "cut sh');
  const pruned = await h.run<PruneResult>('pruneWorkflow', { targets: ['app-pg'] });
  const t = pruned.targets[0]!;
  expect(t.damaged).toContainEqual({ backupId: ids[2], why: expect.stringContaining('is not valid: it is not JSON') });
  expect(t.kept.map((k) => k.backupId)).toEqual([ids[1]]);
  expect(t.deleted).toContain(ids[0]);
  expect(t.deleted).not.toContain(ids[1]);
  expect(t.deleted).not.toContain(ids[2]);
  // The good one still restores; ls shows the damaged one and exits 0.
  await h.run<RestoreResult>('restoreWorkflow', { backupId: ids[1], yes: true, only: { 'app-pg': [db] } });
  const file = await writeConfigFile(dir, env);
  const ls = await lifeboat(file, 'ls', 'app-pg');
  expect(ls.code).toBe(0);
  expect(ls.stdout).toMatch(new RegExp(`^${ids[2]} .*DAMAGED: manifest .* is not valid`, 'm'));
  expect(ls.stdout).toMatch(new RegExp(`^${ids[1]} .*signed, not verified`, 'm'));
});
