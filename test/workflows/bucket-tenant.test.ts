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
  expect(await keys(bucket)).toEqual(['tenant-a/01BLOCK/chunks/000001', 'tenant-a/01BLOCK/meta.json', 'tenant-a/x.txt', 'tenant-b/y.txt']);
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
