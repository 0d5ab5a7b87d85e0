import { DeleteObjectCommand, GetObjectCommand, ListObjectVersionsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import type { Config, S3RepositoryConfig } from '../../src/config';
import { artifactKey } from '../../src/domain/layout';
import type { PruneResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { listBackups } from '../../src/repo/catalog';
import { s3Client } from '../../src/repo/s3';
import { adminClient, bucketEnv, bucketTarget, createBucket, removeBucket, uniqueBucket } from '../contract/bucket-kind';
import { testEnv, withTaskQueue } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

const env = testEnv('prune');
const base = withTaskQueue(env.config, env.taskQueue);
const config: Config = { ...base, retention: { keepLast: 1, daily: 3, weekly: 0, monthly: 0 } };
const locked: Config = {
  ...config,
  retention: { keepLast: 1, daily: 0, weekly: 0, monthly: 0 },
  repository: { ...(config.repository as S3RepositoryConfig), bucket: 'lifeboat-locked', objectLock: { mode: 'GOVERNANCE', days: 1 } },
};
const db = env.databases[0]!;
let h: Harness;

const id = (day: number) => `202610${String(day).padStart(2, '0')}T020000Z-${randomBytes(2).toString('hex')}`;

const run = <T>(harness: Harness, type: string, input: unknown) => harness.run<T>(type, input);

beforeAll(async () => {
  await createDatabase(config, db);
  await seedApp(config, db, 20);
});
afterAll(async () => {
  await dropDatabase(config, db);
});

describe('retention', () => {
  beforeAll(async () => {
    h = await startHarness(config);
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('prune keeps what the policy keeps plus the newest verified backup, dry run first, manifest first', async () => {
    const ids = [1, 2, 3, 4, 5, 6].map(id);
    for (const backupId of ids) await run(h, 'backupWorkflow', { targets: ['app-pg'], backupId });
    await run(h, 'verifyWorkflow', { backupId: ids[1] });
    const repo = await openRepository(config);
    // An interrupted backup (no manifest) from long ago, and a folder that is not lifeboat's.
    const interrupted = id(7).replace('202610', '202609');
    await repo.putText(artifactKey('app-pg', interrupted, `${db}.dump.zst.age`), 'partial');
    await repo.putText('app-pg/not-a-backup/keep-me.txt', 'mine');

    const dry = await run<PruneResult>(h, 'pruneWorkflow', { dryRun: true });
    const t = dry.targets[0]!;
    expect(t.kept.map((k) => k.backupId)).toEqual([ids[5], ids[4], ids[3], ids[1]]);
    expect(t.kept.find((k) => k.backupId === ids[1])!.reasons).toEqual(['newest verified']);
    expect(t.deleted.sort()).toEqual([interrupted, ids[0], ids[2]].sort());
    expect((await listBackups(repo, ['app-pg'])).map((b) => b.backupId)).toEqual(ids);

    const real = await run<PruneResult>(h, 'pruneWorkflow', {});
    expect(real.targets[0]!.deleted.sort()).toEqual([interrupted, ids[0], ids[2]].sort());
    expect((await listBackups(repo, ['app-pg'])).map((b) => b.backupId)).toEqual([ids[1], ids[3], ids[4], ids[5]]);
    for (const gone of [ids[0]!, ids[2]!, interrupted]) expect(await repo.list(`app-pg/${gone}`)).toEqual([]);
    expect(await repo.exists('app-pg/not-a-backup/keep-me.txt')).toBe(true);
  });
});

describe('Object Lock', () => {
  let s3: S3Client;
  const cfg = locked.repository as S3RepositoryConfig;
  beforeAll(async () => {
    h = await startHarness(locked);
    s3 = await s3Client(cfg);
  });
  afterAll(async () => {
    await h?.stop();
    // Governance mode lets a privileged user remove what the test locked.
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: cfg.bucket, Prefix: `${cfg.prefix}/` }));
    for (const v of [...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])]) {
      await s3.send(new DeleteObjectCommand({ Bucket: cfg.bucket, Key: v.Key, VersionId: v.VersionId, BypassGovernanceRetention: true }));
    }
  });

  test('locked artifacts cannot be deleted or overwritten, and prune skips them and says so', async () => {
    const [older, newer] = [id(10), id(11)];
    for (const backupId of [older, newer]) await run(h, 'backupWorkflow', { targets: ['app-pg'], backupId });
    const key = `${cfg.prefix}/${artifactKey('app-pg', older, `${db}.dump.zst.age`)}`;
    const head = await s3.send(new GetObjectCommand({ Bucket: cfg.bucket, Key: key }));
    expect(head.ObjectLockMode).toBe('GOVERNANCE');
    const original = Buffer.from(await head.Body!.transformToByteArray());

    await expect(s3.send(new DeleteObjectCommand({ Bucket: cfg.bucket, Key: key, VersionId: head.VersionId }))).rejects.toMatchObject({ message: 'Object is WORM protected and cannot be overwritten' });
    await s3.send(new PutObjectCommand({ Bucket: cfg.bucket, Key: key, Body: 'overwritten' }));
    const still = await s3.send(new GetObjectCommand({ Bucket: cfg.bucket, Key: key, VersionId: head.VersionId }));
    expect(Buffer.from(await still.Body!.transformToByteArray()).equals(original)).toBe(true);

    const r = await run<PruneResult>(h, 'pruneWorkflow', {});
    const t = r.targets[0]!;
    expect(t.deleted).toEqual([]);
    expect(t.locked).toEqual([{ backupId: older, until: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) }]);
    expect((await listBackups(await openRepository(locked), ['app-pg'])).map((b) => b.backupId)).toEqual([older, newer]);
  });
});

describe('a bucket target\'s object pool', () => {
  const benv = bucketEnv('prunebk');
  const bucket = uniqueBucket('prune');
  const bconfig: Config = {
    ...withTaskQueue(benv.config, `${env.taskQueue}-bk`),
    retention: { keepLast: 1, daily: 0, weekly: 0, monthly: 0 },
    targets: new Map([['files', bucketTarget(benv.repo, 'files', bucket)]]),
  };
  let admin: S3Client;
  beforeAll(async () => {
    admin = await adminClient(benv.repo);
    await createBucket(admin, bucket);
    for (const k of ['a.txt', 'b.txt', 'c.txt']) await admin.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: `first ${k}` }));
    h = await startHarness(bconfig);
  });
  afterAll(async () => {
    await h?.stop();
    await removeBucket(admin, bucket);
  });

  test('prune deletes the stored objects only the pruned backups referenced, and the kept backup still restores', async () => {
    const [older, newer] = [id(20), id(21)];
    await h.run('backupWorkflow', { backupId: older });
    await admin.send(new PutObjectCommand({ Bucket: bucket, Key: 'b.txt', Body: 'second b.txt' }));
    await h.run('backupWorkflow', { backupId: newer });
    const repo = await openRepository(bconfig);
    const pool = async () => (await repo.list('files/objects')).length;
    expect(await pool()).toBe(4); // a, b (first), b (second), c

    const r = await h.run<PruneResult>('pruneWorkflow', {});
    expect(r.targets[0]).toMatchObject({ deleted: [older], garbageDeleted: 1 });
    expect(await pool()).toBe(3);

    await admin.send(new PutObjectCommand({ Bucket: bucket, Key: 'b.txt', Body: 'third b.txt' }));
    await h.run('restoreWorkflow', { backupId: newer, yes: true });
    const got = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: 'b.txt' }));
    expect(await got.Body!.transformToString()).toBe('second b.txt');
  });
});
