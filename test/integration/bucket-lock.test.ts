import { DeleteObjectCommand, GetObjectRetentionCommand, ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Config, S3RepositoryConfig } from '../../src/config';
import { BucketStore } from '../../src/stores/bucket';
import {
  adminClient,
  backupThroughPipeline,
  bucketEnv,
  bucketTarget,
  createBucket,
  getText,
  putObjects,
  removeBucket,
  restoreThroughPipeline,
  scopeFor,
  thanosLayout,
  uniqueBucket,
} from '../contract/bucket-kind';

/** The stack's bucket with Object Lock enabled (scripts/stack.sh). */
const LOCKED = 'lifeboat-locked';
const env = bucketEnv('bucketlock');
const lockedRepo = (days: number): S3RepositoryConfig => ({ ...env.repo, bucket: LOCKED, objectLock: { mode: 'GOVERNANCE', days } });
const withRepo = (repository: S3RepositoryConfig): Config => ({ ...env.config, repository });
let c: S3Client;
const made: string[] = [];

const DAY = 86_400_000;

async function retention(key: string): Promise<number> {
  const r = await c.send(new GetObjectRetentionCommand({ Bucket: LOCKED, Key: key }));
  return r.Retention!.RetainUntilDate!.getTime();
}

beforeAll(async () => {
  c = await adminClient(env.repo);
});

afterAll(async () => {
  for (const b of made) await removeBucket(c, b);
  // Test objects are locked in GOVERNANCE mode: the owner may bypass it.
  let marker: { KeyMarker?: string; VersionIdMarker?: string } = {};
  for (;;) {
    const page = await c.send(new ListObjectVersionsCommand({ Bucket: LOCKED, Prefix: `${env.repo.prefix}/`, ...marker }));
    for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
      await c.send(new DeleteObjectCommand({ Bucket: LOCKED, Key: v.Key!, VersionId: v.VersionId, BypassGovernanceRetention: true }));
    }
    if (!page.IsTruncated) break;
    marker = { KeyMarker: page.NextKeyMarker, VersionIdMarker: page.NextVersionIdMarker };
  }
});

describe('bucket store with an Object Lock repository', () => {
  it('locks the objects it copies, extends the lock of objects a new backup reuses, and restores', async () => {
    const bucket = uniqueBucket('lock');
    made.push(bucket);
    await createBucket(c, bucket);
    await putObjects(c, bucket, thanosLayout('l'));
    const s = new BucketStore(env.config.file, bucketTarget(env.repo, 'locked', bucket));

    // server-side copies (encryption none), locked for a day
    const one = await scopeFor(withRepo(lockedRepo(1)), 'locked', null);
    const first = await backupThroughPipeline(s, one);
    expect(first.item.meta).toMatchObject({ copied: 14, serverSide: 14 });
    const [pool] = (await one.repo.list('locked/objects')).map((e) => e.name);
    const key = `${env.repo.prefix}/locked/objects/${pool}`;
    const before = await retention(key);
    expect(before).toBeGreaterThan(Date.now() + 0.9 * DAY);
    expect(before).toBeLessThan(Date.now() + 1.1 * DAY);

    // a later backup with a longer lock reuses every object, and extends its lock
    const two = await scopeFor(withRepo(lockedRepo(2)), 'locked', null);
    const second = await backupThroughPipeline(s, two);
    expect(second.item.meta).toMatchObject({ copied: 0 });
    expect(await retention(key)).toBeGreaterThan(Date.now() + 1.9 * DAY);

    // the in-memory PUT path (encrypted) writes locked objects too (it sends Content-MD5, which a lock requires)
    const enc = await scopeFor(withRepo(lockedRepo(1)), 'locked-age');
    const third = await backupThroughPipeline(s, enc);
    expect(third.item.meta).toMatchObject({ copied: 14, serverSide: 0 });

    const into = uniqueBucket('lock-into');
    made.push(into);
    await restoreThroughPipeline(s, enc, third, into);
    expect(await getText(c, into, 'bundles/app.tar.gz')).toBe('bundle l');
  });
});
