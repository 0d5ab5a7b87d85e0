import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import type { Config } from '../../src/config';
import { makeBackupId } from '../../src/domain/names';
import type { RestoreResult } from '../../src/domain/plan';
import { listAll } from '../../src/stores/bucket/s3';
import { adminClient, bucketEnv, bucketTarget, createBucket, removeBucket, uniqueBucket } from '../contract/bucket-kind';
import { withTaskQueue } from '../helpers/env';
import { failureOf, startHarness, type Harness } from '../helpers/temporal';

/** Restoring one tenant (a sub-prefix) of a bucket target, in place and into another bucket. */
const benv = bucketEnv('tenant');
const bucket = uniqueBucket('tenant');
const copy = uniqueBucket('tcopy');
const config: Config = { ...withTaskQueue(benv.config, `lifeboat-test-tenant-${randomBytes(3).toString('hex')}`), targets: new Map([['files', bucketTarget(benv.repo, 'files', bucket)]]) };
let admin: S3Client;
let h: Harness;

const put = (b: string, key: string, body: string) => admin.send(new PutObjectCommand({ Bucket: b, Key: key, Body: body }));
const get = async (b: string, key: string) => (await admin.send(new GetObjectCommand({ Bucket: b, Key: key }))).Body!.transformToString();
const keys = async (b: string) => (await listAll(admin, b, '')).map((o) => o.key).sort();

beforeAll(async () => {
  admin = await adminClient(benv.repo);
  await createBucket(admin, bucket);
  await put(bucket, 'tenant-a/x.txt', 'a-x original');
  await put(bucket, 'tenant-a/01BLOCK/chunks/000001', 'a chunk');
  await put(bucket, 'tenant-a/01BLOCK/meta.json', '{"a":1}');
  await put(bucket, 'tenant-b/y.txt', 'b-y original');
  await put(bucket, 'tenant-ab/important.txt', 'a neighbour whose name starts like tenant-a');
  h = await startHarness(config);
});

afterAll(async () => {
  await h?.stop();
  await removeBucket(admin, bucket);
  await removeBucket(admin, copy);
});

test('one tenant comes back as it was; the other tenant keeps what it has now', async () => {
  const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
  await h.run('backupWorkflow', { backupId });
  await put(bucket, 'tenant-a/x.txt', 'a-x damaged');
  await put(bucket, 'tenant-a/stray.txt', 'not in the backup');
  await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'tenant-a/01BLOCK/meta.json' }));
  await put(bucket, 'tenant-b/y.txt', 'b-y newer');

  const r = await h.run<RestoreResult>('restoreWorkflow', { backupId, yes: true, subPrefix: { files: 'tenant-a/' } });
  expect(r.plan.targets[0]!.subPrefix).toBe('tenant-a/');
  expect(await keys(bucket)).toEqual(['tenant-a/01BLOCK/chunks/000001', 'tenant-a/01BLOCK/meta.json', 'tenant-a/x.txt', 'tenant-ab/important.txt', 'tenant-b/y.txt']);
  expect(await get(bucket, 'tenant-a/x.txt')).toBe('a-x original');
  expect(await get(bucket, 'tenant-b/y.txt')).toBe('b-y newer');

  await h.run('restoreWorkflow', { backupId, yes: true, subPrefix: { files: 'tenant-a/' }, into: { files: { [bucket]: copy } } });
  expect(await keys(copy)).toEqual(['tenant-a/01BLOCK/chunks/000001', 'tenant-a/01BLOCK/meta.json', 'tenant-a/x.txt']);
});

test('a sub-prefix that climbs out is refused before anything happens', async () => {
  const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
  await h.run('backupWorkflow', { backupId });
  const f = await failureOf(h.run('restoreWorkflow', { backupId, yes: true, subPrefix: { files: '../tenant-b/' } }));
  expect(f.type).toBe('InvalidName');
  expect(f.message).toContain("sub-prefix \"../tenant-b/\" is not valid");
});

test("'tenant-a' means the folder tenant-a/: its neighbour tenant-ab/ is never read, written or deleted, and the dry run lists exactly the keys that change", async () => {
  const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
  await h.run('backupWorkflow', { backupId });
  // After the backup: a new neighbour object, a damaged and a stray object in tenant-a.
  await put(bucket, 'tenant-ab/new.txt', 'written after the backup');
  await put(bucket, 'tenant-a/x.txt', 'a-x damaged again');
  await put(bucket, 'tenant-a/stray2.txt', 'not in the backup');

  const plan = await h.run<RestoreResult>('restoreWorkflow', { backupId, dryRun: true, subPrefix: { files: 'tenant-a' } });
  expect(plan.plan.targets[0]!.subPrefix).toBe('tenant-a/');
  expect(plan.plan.targets[0]!.preview).toEqual([
    `s3://${bucket}/tenant-a/: write 1, delete 1, unchanged 2; nothing outside s3://${bucket}/tenant-a/ is read, written or deleted`,
    'write  tenant-a/x.txt',
    'delete tenant-a/stray2.txt',
  ]);
  expect(await get(bucket, 'tenant-a/x.txt')).toBe('a-x damaged again'); // a dry run changes nothing

  await h.run<RestoreResult>('restoreWorkflow', { backupId, yes: true, subPrefix: { files: 'tenant-a' } });
  expect(await get(bucket, 'tenant-a/x.txt')).toBe('a-x original');
  expect(await get(bucket, 'tenant-ab/important.txt')).toBe('a neighbour whose name starts like tenant-a');
  expect(await get(bucket, 'tenant-ab/new.txt')).toBe('written after the backup');
  expect((await keys(bucket)).filter((k) => k.startsWith('tenant-a/'))).toEqual(['tenant-a/01BLOCK/chunks/000001', 'tenant-a/01BLOCK/meta.json', 'tenant-a/x.txt']);
});
