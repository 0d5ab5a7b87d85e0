import { PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { S3RepositoryConfig } from '../../src/config';
import { artifactKey } from '../../src/domain/layout';
import { makeBackupId } from '../../src/domain/names';
import type { BackupResult, VerifyResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { storeArtifact } from '../../src/repo/artifacts';
import { readManifest, readVerification, writeManifest } from '../../src/repo/catalog';
import { s3Client } from '../../src/repo/s3';
import { testEnv, withTaskQueue, trustOf, signingKeyOf } from '../helpers/env';
import { createDatabase, dropDatabase, pg, seedApp } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

const env = testEnv('verify');
const config = withTaskQueue(env.config, env.taskQueue);
const db = env.databases[0]!;
let h: Harness;

const run = <T>(type: string, input: unknown) => h.run<T>(type, input);

async function backup(): Promise<string> {
  const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
  await run<BackupResult>('backupWorkflow', { targets: ['app-pg'], backupId });
  return backupId;
}

beforeAll(async () => {
  h = await startHarness(config);
  await createDatabase(config, db);
  await seedApp(config, db, 200);
});
afterAll(async () => {
  await h?.stop();
  await dropDatabase(config, db);
});

test('a good backup verifies: checksum, age to the last chunk, pg_restore --list; the result is stored', async () => {
  const backupId = await backup();
  const oid = await pg(config, 'postgres', (c) => c.query('SELECT oid FROM pg_database WHERE datname = $1', [db]));
  const r = await run<VerifyResult>('verifyWorkflow', { backupId });
  expect(r.ok).toBe(true);
  const a = r.targets[0]!.artifacts.find((x) => x.file === `${db}.dump.zst.age`)!;
  expect(a).toMatchObject({ file: `${db}.dump.zst.age`, ok: true });
  expect(a.detail).toMatch(/^pg_restore --list: \d+ entries, 1 with table data$/);
  const stored = await readVerification(await openRepository(config), 'app-pg', backupId);
  expect(stored).toMatchObject({ ok: true, backupId, target: 'app-pg' });
  // Untouched: the same database, not a dropped and recreated one.
  expect((await pg(config, 'postgres', (c) => c.query('SELECT oid FROM pg_database WHERE datname = $1', [db]))).rows).toEqual(oid.rows);
});

test('a tampered artifact fails verification with the checksum message, and the failure is stored', async () => {
  const backupId = await backup();
  const repoCfg = config.repository as S3RepositoryConfig;
  const key = `${repoCfg.prefix}/${artifactKey('app-pg', backupId, `${db}.dump.zst.age`)}`;
  const repo = await openRepository(config);
  const chunks: Buffer[] = [];
  for await (const c of await repo.get(artifactKey('app-pg', backupId, `${db}.dump.zst.age`))) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  body.writeUInt8(body.readUInt8(200) ^ 0x80, 200);
  await (await s3Client(repoCfg)).send(new PutObjectCommand({ Bucket: repoCfg.bucket, Key: key, Body: body }));
  const r = await run<VerifyResult>('verifyWorkflow', { backupId });
  expect(r.ok).toBe(false);
  expect(r.targets[0]!.artifacts.find((x) => x.file === `${db}.dump.zst.age`)!.error).toMatchObject({ type: 'ChecksumMismatch', message: expect.stringContaining('failed its checksum') });
  expect(await readVerification(repo, 'app-pg', backupId)).toMatchObject({ ok: false });
});

test('an artifact whose checksum and encryption are sound but whose dump is cut short fails the readability check', async () => {
  const backupId = await backup();
  const repo = await openRepository(config);
  const m = await readManifest(repo, 'app-pg', backupId, trustOf(config));
  const art = m.artifacts.find((x) => x.name === db)!;
  // A sealed, correctly hashed artifact of a dump cut after its header: only pg_restore can tell.
  const stored = await storeArtifact(repo, artifactKey('app-pg', backupId, art.file), Readable.from([Buffer.from('PGDMP\x01\x0e\x00\x04\x08\x01\x01')]), config.encryption, undefined, undefined, art.compression === 'zstd' ? { algorithm: 'zstd', level: 3 } : undefined);
  await writeManifest(repo, { ...m, artifacts: m.artifacts.map((x) => (x === art ? { ...art, bytes: stored.bytes, sha256: stored.sha256 } : x)) }, await signingKeyOf(config));
  const r = await run<VerifyResult>('verifyWorkflow', { backupId });
  expect(r.ok).toBe(false);
  expect(r.targets[0]!.artifacts.find((x) => x.file === art.file)!.error?.message).toMatch(/^pg_restore --list exited with code 1: pg_restore: error/);
});
