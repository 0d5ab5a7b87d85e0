import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ArtifactRecord } from '../../src/domain/manifest';
import { readArtifact } from '../../src/repo/artifacts';
import { LocalRepository } from '../../src/repo/local';
import { BucketStore } from '../../src/stores/bucket';
import type { Scope } from '../../src/stores/bucket/pool';
import { listAll } from '../../src/stores/bucket/s3';
import {
  BLOCK,
  DELETED_BLOCK,
  adminClient,
  backupThroughPipeline,
  bucketEnv,
  bucketTarget,
  createBucket,
  getText,
  putObjects,
  quietCtx,
  removeBucket,
  removePrefix,
  restoreThroughPipeline,
  scopeFor,
  snapshot,
  thanosLayout,
  uniqueBucket,
} from '../contract/bucket-kind';

const env = bucketEnv('bucketstore');
const made: string[] = [];
let c: S3Client;
let localDir: string;

async function freshBucket(label: string, objects: Record<string, string> = {}): Promise<string> {
  const b = uniqueBucket(label);
  made.push(b);
  await createBucket(c, b);
  await putObjects(c, b, objects);
  return b;
}

function store(bucket: string, extra: Record<string, unknown> = {}, target = 'bundles'): BucketStore {
  return new BucketStore(env.config.file, bucketTarget(env.repo, target, bucket, extra));
}

/** Pool object names in the repository, for a target folder. */
async function poolOf(scope: Scope): Promise<string[]> {
  return (await scope.repo.list(`${scope.dir}/objects`)).map((e) => e.name);
}

const meta = (b: { item: { meta?: Record<string, unknown> } }) => b.item.meta as { copied: number; objects: number; excluded: number; serverSide: number; copiedBytes: number };

/** Above the in-memory threshold (1 MiB) and the large-object one (8 MiB). */
const BIG = { 'big/two-mib.bin': randomBytes(2 * 1024 * 1024 + 3), 'big/nine-mib.bin': randomBytes(9 * 1024 * 1024 + 5) };
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

/** key -> SHA-256 of every object in a bucket. */
async function digests(bucket: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const o of await listAll(c, bucket, '')) out[o.key] = sha(await (await c.send(new GetObjectCommand({ Bucket: bucket, Key: o.key }))).Body!.transformToByteArray());
  return out;
}

beforeAll(async () => {
  c = await adminClient(env.repo);
  localDir = await mkdtemp(join(tmpdir(), 'lifeboat-bucket-'));
});

afterAll(async () => {
  for (const b of made) await removeBucket(c, b);
  await removePrefix(c, env.repo.bucket, `${env.repo.prefix}/`);
  await rm(localDir, { recursive: true, force: true });
});

describe('bucket store (MinIO)', () => {
  it('is incremental: an unchanged object is not copied again, a changed one is, and every backup restores in full', async () => {
    const bucket = await freshBucket('incr', thanosLayout('v1'));
    const s = store(bucket);
    const scope = await scopeFor(env.config, 'incr');
    const first = await backupThroughPipeline(s, scope);
    expect(meta(first).copied).toBe(meta(first).objects);
    const pool1 = await poolOf(scope);
    expect(pool1).toHaveLength(meta(first).objects);

    const second = await backupThroughPipeline(s, scope);
    expect(meta(second).copied).toBe(0);
    expect(await poolOf(scope)).toEqual(pool1);

    await putObjects(c, bucket, { 'bundles/app.tar.gz': 'bundle v2, changed' });
    const third = await backupThroughPipeline(s, scope);
    expect(meta(third).copied).toBe(1);
    expect(meta(third).copiedBytes).toBe('bundle v2, changed'.length);
    expect(await poolOf(scope)).toHaveLength(pool1.length + 1);
    // progress counted the one object it copied
    expect(third.progress.filter((p) => p.stage === 'copy').pop()).toMatchObject({ objects: 1, totalObjects: 1 });

    // the first backup still restores as it was, the third as it is now
    const old = await freshBucket('incr-old');
    await restoreThroughPipeline(s, scope, first, old);
    expect(await getText(c, old, 'bundles/app.tar.gz')).toBe('bundle v1');
    const now = await freshBucket('incr-now');
    await restoreThroughPipeline(s, scope, third, now);
    expect(await snapshot(c, now)).toEqual(await snapshot(c, bucket));
  });

  it('leaves out excluded globs and blocks with a deletion-mark.json, as the Deckhouse rclone line does', async () => {
    const bucket = await freshBucket('excl', thanosLayout('x'));
    const s = store(bucket, { exclude: ['*/markers/*', '*/bucket-index.json.gz'], excludeDeletionMarked: true });
    const scope = await scopeFor(env.config, 'excl');
    const b = await backupThroughPipeline(s, scope);
    const into = await freshBucket('excl-into');
    await restoreThroughPipeline(s, scope, b, into);
    const keys = Object.keys(await snapshot(c, into)).sort();
    expect(keys).toEqual(
      [`tenant-a/${BLOCK}/chunks/000001`, `tenant-a/${BLOCK}/chunks/000002`, `tenant-a/${BLOCK}/index`, `tenant-a/${BLOCK}/meta.json`, 'bundles/app.tar.gz', 'empty.txt', 'folder/', 'odd name/with spaces & ünïcode.txt'].sort(),
    );
    expect(keys.some((k) => k.includes(DELETED_BLOCK))).toBe(false);
    expect(meta(b).excluded).toBe(6); // 4 of the deleted block, its global marker, the bucket index
  });

  it('restores into another bucket: same keys, bodies and content types; the source is untouched', async () => {
    const bucket = await freshBucket('other', thanosLayout('o'));
    const s = store(bucket);
    const scope = await scopeFor(env.config, 'other');
    const b = await backupThroughPipeline(s, scope);
    const before = await snapshot(c, bucket);
    const into = `lb-other-into-${Date.now().toString(16)}`; // does not exist yet: the restore creates it
    made.push(into);
    await restoreThroughPipeline(s, scope, b, into);
    expect(await snapshot(c, into)).toEqual(before);
    expect(await snapshot(c, bucket)).toEqual(before);
    const type = (bkt: string) => c.send(new HeadObjectCommand({ Bucket: bkt, Key: `tenant-a/${BLOCK}/meta.json` })).then((h) => h.ContentType);
    expect(await type(into)).toBe('application/json');
  });

  it('replaces: objects the backup lacks are deleted, stale markers too, identical objects are not rewritten', async () => {
    const bucket = await freshBucket('repl', thanosLayout('r'));
    const s = store(bucket);
    const scope = await scopeFor(env.config, 'repl');
    const b = await backupThroughPipeline(s, scope);
    await putObjects(c, bucket, { 'tenant-a/01HNEWBLOCK/chunks/000001': 'new', 'tenant-a/01HNEWBLOCK/meta.json': '{}', [`tenant-a/${BLOCK}/index`]: 'corrupted' });
    const ctx = quietCtx();
    const logged: Array<Record<string, unknown> | undefined> = [];
    await restoreThroughPipeline(s, scope, b, bucket, { ...ctx, log: { ...ctx.log, info: (_m, m) => logged.push(m) } });
    expect(await snapshot(c, bucket)).toEqual(Object.fromEntries(Object.entries(thanosLayout('r')).sort()));
    // the corrupted index and its block's marker were rewritten; the rest was already there
    expect(logged.pop()).toMatchObject({ written: 2, deleted: 2, unchanged: Object.keys(thanosLayout('r')).length - 2 });
  });

  it('restores in two phases: no completion marker is visible while data objects are still arriving', async () => {
    // 40 blocks x 6 data objects, written two at a time so the restore takes a while
    const objects: Record<string, string> = {};
    for (let i = 0; i < 40; i++) {
      const block = `tenant-a/01HBLOCK${String(i).padStart(4, '0')}`;
      for (let j = 1; j <= 5; j++) objects[`${block}/chunks/00000${j}`] = `chunk ${i}.${j}`;
      objects[`${block}/index`] = `index ${i}`;
      objects[`${block}/meta.json`] = `{"block":${i}}`;
    }
    const dataCount = Object.keys(objects).length - 40;
    const bucket = await freshBucket('phase', objects);
    const scope = await scopeFor(env.config, 'phase');

    /** Lists `into` over and over during the restore: how many data objects were there when a marker first showed up. */
    async function observe(s: BucketStore, b: Awaited<ReturnType<typeof backupThroughPipeline>>, into: string) {
      let done = false;
      const seen: Array<{ data: number; markers: number }> = [];
      const watcher = (async () => {
        while (!done) {
          const keys = (await listAll(c, into, '').catch(() => [])).map((o) => o.key);
          const markers = keys.filter((k) => k.endsWith('/meta.json')).length;
          seen.push({ data: keys.length - markers, markers });
        }
      })();
      try {
        await restoreThroughPipeline(s, scope, b, into);
      } finally {
        done = true;
        await watcher;
      }
      return { seen, firstMarker: seen.find((x) => x.markers > 0) };
    }

    const twoPhase = store(bucket, { concurrency: 2 });
    const into = await freshBucket('phase-into');
    const r = await observe(twoPhase, await backupThroughPipeline(twoPhase, scope), into);
    // the watcher saw the restore in progress (some data, not all), so what follows is an observation
    expect(r.seen.some((x) => x.data > 0 && x.data < dataCount)).toBe(true);
    expect(r.firstMarker).toBeDefined();
    expect(r.firstMarker!.data).toBe(dataCount);

    // control: with no completion markers configured, meta.json is ordinary data and the same watcher catches it early
    const onePhase = store(bucket, { concurrency: 2, completionMarkers: ['no-such-marker'] });
    const control = await observe(onePhase, await backupThroughPipeline(onePhase, scope), await freshBucket('phase-ctl'));
    expect(control.firstMarker!.data).toBeLessThan(dataCount);
  });

  it('encrypts pool objects with age when the config has recipients, and restores them', async () => {
    expect(env.config.encryption).not.toBeNull();
    const bucket = await freshBucket('enc', { 'secret/plans.txt': 'the launch codes' });
    await putObjects(c, bucket, BIG); // streamed, and multipart on restore
    const s = store(bucket);
    const scope = await scopeFor(env.config, 'enc');
    const b = await backupThroughPipeline(s, scope);
    expect(meta(b).serverSide).toBe(0);
    const [pool] = await poolOf(scope);
    const stored = await scope.repo.getText(`enc/objects/${pool}`);
    expect(stored.startsWith('age-encryption.org/v1\n')).toBe(true);
    expect(stored).not.toContain('launch codes');
    const refs = await scope.repo.getText(`enc/${b.key.split('/')[1]}/pool-refs.txt`);
    expect(refs).toContain(pool!);
    expect(refs).not.toContain('plans');
    const into = await freshBucket('enc-into');
    await restoreThroughPipeline(s, scope, b, into);
    expect(await getText(c, into, 'secret/plans.txt')).toBe('the launch codes');
    expect(await digests(into)).toEqual(await digests(bucket));
  });

  it('without encryption copies server-side on the same endpoint, and streams into a local repository', async () => {
    const bucket = await freshBucket('plain', thanosLayout('p'));
    await putObjects(c, bucket, BIG);
    const s = store(bucket);
    const scope = await scopeFor(env.config, 'plain', null);
    const b = await backupThroughPipeline(s, scope);
    expect(meta(b).serverSide).toBe(meta(b).objects);
    const into = await freshBucket('plain-into');
    await restoreThroughPipeline(s, scope, b, into);
    expect(await digests(into)).toEqual(await digests(bucket));
    // the copy kept the Content-Type in the pool object, and the restore took it from there
    const head = await c.send(new HeadObjectCommand({ Bucket: into, Key: `tenant-a/${BLOCK}/meta.json` }));
    expect(head.ContentType).toBe('application/json');

    const local: Scope = { repo: new LocalRepository(localDir), dir: 'plain', encryption: null, location: { kind: 'local', path: localDir } };
    const lb = await backupThroughPipeline(s, local);
    expect(meta(lb)).toMatchObject({ copied: meta(b).objects, serverSide: 0 });
    const stored = await Promise.all((await poolOf(local)).map(async (p) => sha(await readFile(join(localDir, 'plain/objects', p)))));
    expect(stored.sort()).toEqual(Object.values(await digests(bucket)).sort()); // stored as they are
    const into2 = await freshBucket('plain-local');
    await restoreThroughPipeline(s, local, lb, into2);
    expect(await digests(into2)).toEqual(await digests(bucket));
  });

  it('verify and restore refuse a tampered pool object; the restore writes no marker of its block', async () => {
    const bucket = await freshBucket('tamper', thanosLayout('t'));
    const s = store(bucket);
    const scope = await scopeFor(env.config, 'tamper', null);
    const b = await backupThroughPipeline(s, scope);
    const inspect = async () => s.inspect({ ...quietCtx(), repository: scope }, b.item, await readArtifact(scope.repo, b.key, b.record as ArtifactRecord, []));
    expect(await inspect()).toMatch(/^14 objects, \d+ bytes from s3:\/\/lb-tamper-.*every pool object checked \(stored SHA-256\)$/);
    const plain = await scope.repo.getText(b.key);
    const entry = plain.split('\n').map((l) => (l ? JSON.parse(l) : null)).find((e) => e?.key === `tenant-a/${BLOCK}/chunks/000002`);
    await c.send(new PutObjectCommand({ Bucket: env.repo.bucket, Key: `${env.repo.prefix}/tamper/objects/${entry.pool}`, Body: Buffer.from('chunks 2 T') }));
    const into = await freshBucket('tamper-into');
    await expect(inspect()).rejects.toMatchObject({ type: 'ChecksumMismatch' }); // lifeboat verify finds it before a restore does
    await expect(restoreThroughPipeline(s, scope, b, into)).rejects.toMatchObject({ type: 'ChecksumMismatch' });
    const keys = (await listAll(c, into, '')).map((o) => o.key);
    expect(keys).not.toContain(`tenant-a/${BLOCK}/meta.json`);
    expect(keys).not.toContain(`tenant-a/${BLOCK}/chunks/000002`);
  });

  it('calls wrong credentials and a missing bucket permanent, naming the bucket', async () => {
    process.env.LIFEBOAT_TEST_BAD_SECRET = 'definitely-wrong';
    const bucket = await freshBucket('creds', { a: 'a' });
    const scope = await scopeFor(env.config, 'creds');
    const bad = new BucketStore(env.config.file, bucketTarget(env.repo, 'bundles', bucket, { secretAccessKey: { env: 'LIFEBOAT_TEST_BAD_SECRET' } }));
    const err = await backupThroughPipeline(bad, scope).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'SignatureDoesNotMatch' });
    expect((err as Error).message).toContain(`s3://${bucket}/`);
    expect(bad.isPermanent(err)).toBe(true);

    const missing = store('lb-no-such-bucket-here');
    const err2 = await missing.probe(quietCtx()).catch((e: unknown) => e);
    expect(err2).toMatchObject({ type: 'NoSuchBucket' });
    expect(missing.isPermanent(err2)).toBe(true);
    expect(missing.isPermanent(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(false);
  });

  it('drops: objects under the prefix of a real bucket, a scratch bucket whole; both idempotent', async () => {
    const bucket = await freshBucket('drop', { 'keep/outside.txt': 'x', 'app/a.txt': 'a', [`app/${BLOCK}/meta.json`]: '{}' });
    const s = store(bucket, { prefix: 'app/' });
    await s.drop(quietCtx(), bucket);
    await s.drop(quietCtx(), bucket);
    expect(Object.keys(await snapshot(c, bucket))).toEqual(['keep/outside.txt']);
    const scratch = s.scratchName('ABCDEF12');
    expect(scratch).toBe('lifeboat-drill-abcdef12');
    await createBucket(c, scratch);
    made.push(scratch);
    await putObjects(c, scratch, { 'app/x': 'x' });
    await s.drop(quietCtx(), scratch);
    await s.drop(quietCtx(), scratch);
    const gone = await c.send(new GetObjectCommand({ Bucket: scratch, Key: 'app/x' })).catch((e: unknown) => e);
    expect(gone).toMatchObject({ name: 'NoSuchBucket' });
  });
});
