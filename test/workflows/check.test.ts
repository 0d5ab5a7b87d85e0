import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../../src/config';
import { artifactKey, blocksKey, sidecarKey } from '../../src/domain/layout';
import { makeBackupId } from '../../src/domain/names';
import { openRepository, type Repository } from '../../src/repo';
import { readManifest } from '../../src/repo/catalog';
import { POOL_DIR } from '../../src/stores/bucket/pool';
import { adminClient, bucketTarget, createBucket, removeBucket, removePrefix, uniqueBucket } from '../contract/bucket-kind';
import { lifeboat as run } from '../helpers/cli';
import { writeConfigFile } from '../helpers/config-file';
import { testEnv } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

/** Tests read the manifests that the stack's signing key signed (or unsigned ones, where it has none). */
const anyTrust = () => ({ publicKeys: env.config.signing?.publicKeys ?? [], allowUnsigned: true });

/**
 * `lifeboat check [--read-data]` over a repository that real backups wrote (a
 * postgres target and a bucket target with its object pool), then damaged in
 * the ways that happen: a flipped byte, a truncated artifact, a sidecar that
 * disagrees, a pool object gone. Only this file's repository prefix is touched.
 */
const env = testEnv('check');
if (env.config.repository.kind !== 's3') throw new Error("the check test needs the stack's S3 repository (MinIO)");
const repoCfg = env.config.repository;
const bucket = uniqueBucket('check');
const config: Config = {
  ...env.config,
  temporal: { ...env.config.temporal, taskQueue: env.taskQueue },
  targets: new Map([...env.config.targets, ['files', bucketTarget(repoCfg, 'files', bucket)]]),
};
const db = env.databases[0]!;
let admin: S3Client;
let h: Harness;
let repo: Repository;
let dir: string;
let configFile: string;
const pgBackup = makeBackupId(new Date(), randomBytes(2).toString('hex'));

const lifeboat = (...args: string[]) => run(configFile, ...args);
const put = (key: string, body: Buffer | string) => repo.put(key, Readable.from([Buffer.from(body)]));
const getBytes = async (key: string) => Buffer.concat(await (await repo.get(key)).toArray());

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-check-'));
  configFile = await writeConfigFile(dir, env);
  admin = await adminClient(repoCfg);
  await createBucket(admin, bucket);
  for (const [k, v] of Object.entries({ 'a/one.txt': 'one', 'a/two.txt': 'two two', 'b/three.bin': randomBytes(4096) })) {
    await admin.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: v }));
  }
  await createDatabase(config, db);
  await seedApp(config, db, 50);
  repo = await openRepository(config);
  h = await startHarness(config);
  await h.run('backupWorkflow', { backupId: pgBackup });
});

afterAll(async () => {
  await h?.stop();
  await dropDatabase(config, db);
  await removeBucket(admin, bucket);
  await removePrefix(admin, repoCfg.bucket, `${repoCfg.prefix}/`);
  await rm(dir, { recursive: true, force: true });
});

test('a repository as the backups wrote it is clean, with and without reading the data', async () => {
  const pgArtifacts = (await readManifest(repo, 'app-pg', pgBackup, anyTrust())).artifacts.length;
  const r = await lifeboat('check', '--json');
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out).toMatchObject({ ok: true, readData: false, problems: [] });
  const files = out.backups.find((b: { target: string }) => b.target === 'files');
  expect(files).toMatchObject({ backupId: pgBackup, complete: true, referenced: 3, problems: [] });
  expect(out.backups.find((b: { target: string }) => b.target === 'app-pg')).toMatchObject({ backupId: pgBackup, complete: true, artifacts: pgArtifacts, problems: [] });

  const data = await lifeboat('check', '--read-data');
  expect(data.code).toBe(0);
  expect(data.stdout).toMatch(new RegExp(`^ok\\+data app-pg/${pgBackup}: ${pgArtifacts} artifact\\(s\\)`, 'm'));
  expect(data.stdout).toMatch(new RegExp(`^ok\\+data files/${pgBackup}: 1 artifact\\(s\\), 3 pool object\\(s\\)`, 'm'));
  expect(data.stdout).toMatch(/^no problems: 2 backup\(s\), .* read and hashed again$/m);
});

test('damage is found and named: a flipped byte only by --read-data; truncation, a wrong sidecar, a missing block list and a missing pool object by both', async () => {
  const m = await readManifest(repo, 'app-pg', pgBackup, anyTrust());
  const a = m.artifacts[0]!;
  const key = artifactKey('app-pg', pgBackup, a.file);
  const original = await getBytes(key);
  const flipped = Buffer.from(original);
  flipped[flipped.length >> 1] = flipped[flipped.length >> 1]! ^ 0xff;
  await put(key, flipped);

  const quick = await lifeboat('check');
  expect(quick.code).toBe(0); // same size: only reading the bytes can tell
  const deep = await lifeboat('check', '--read-data');
  expect(deep.code).toBe(1);
  expect(deep.stdout).toContain(`FAILED app-pg/${pgBackup}`);
  expect(deep.stdout).toContain(`${repo.url(key)} failed its checksum (recorded ${a.sha256}, read `);

  await put(key, original.subarray(0, original.length - 10));
  await put(sidecarKey(key), `${'0'.repeat(64)}  ${a.file}\n`);
  await repo.delete([blocksKey(key)]);
  const pool = (await repo.list(`files/${POOL_DIR}`)).filter((e) => !e.dir);
  await repo.delete([`files/${POOL_DIR}/${pool[0]!.name}`]);

  const r = await lifeboat('check', '--json');
  expect(r.code).toBe(1);
  const out = JSON.parse(r.stdout);
  expect(out.ok).toBe(false);
  const problems = (t: string) => out.backups.find((b: { target: string }) => b.target === t).problems as string[];
  expect(problems('app-pg')).toEqual([
    `${repo.url(key)} is ${original.length - 10} bytes, the backup recorded ${a.bytes}`,
    `${repo.url(sidecarKey(key))} does not agree with the manifest (sha256 ${a.sha256})`,
    `${repo.url(blocksKey(key))} is missing`,
  ]);
  expect(problems('files')).toEqual([`${repo.url(`files/${POOL_DIR}/${pool[0]!.name}`)} is missing`]);

  const human = await lifeboat('check');
  expect(human.code).toBe(1);
  expect(human.stdout).toMatch(/^4 problem\(s\) in 2 of 2 backup\(s\)$/m);
});
