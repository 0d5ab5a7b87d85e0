import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, DeleteBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Config, S3RepositoryConfig, TargetConfig } from '../../src/config';
import type { ArtifactRecord } from '../../src/domain/manifest';
import { makeBackupId } from '../../src/domain/names';
import { openRepository } from '../../src/repo';
import { loadIdentities, readArtifact, storeArtifact } from '../../src/repo/artifacts';
import { s3Client } from '../../src/repo/s3';
import { BucketStore, type BucketStoreOptions } from '../../src/stores/bucket';
import type { Scope } from '../../src/stores/bucket/pool';
import type { BackupItem, Progress, Store, StoreContext } from '../../src/stores';
import { deleteKeys, isNoSuchBucket, listAll } from '../../src/stores/bucket/s3';
import { forEachLimit } from '../../src/stores/bucket/work';
import { testEnv } from '../helpers/env';
import type { ContractKind } from './kinds';

/**
 * Helpers for the bucket kind's tests (contract, integration, bench): a
 * unique bucket on the stack's MinIO, filled with a Thanos-like layout, and
 * stores pointed at it with a repository under the test's own prefix.
 */
export function bucketEnv(name: string): { config: Config; repo: S3RepositoryConfig; run: string } {
  const env = testEnv(name);
  if (env.config.repository.kind !== 's3') throw new Error('the bucket tests need the stack\'s S3 repository (MinIO)');
  return { config: env.config, repo: env.config.repository, run: env.config.repository.prefix.split('/').pop()! };
}

export function uniqueBucket(label: string): string {
  return `lb-${label}-${randomBytes(4).toString('hex')}`;
}

/** A bucket target on the same MinIO as the repository, with its credentials. */
export function bucketTarget(cfg: S3RepositoryConfig, name: string, bucket: string, extra: Record<string, unknown> = {}): TargetConfig {
  return {
    name,
    kind: 'bucket',
    settings: { kind: 'bucket', endpoint: cfg.endpoint, region: cfg.region, bucket, forcePathStyle: true, accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey, ...extra },
  };
}

export async function scopeFor(config: Config, dir: string, encryption: Config['encryption'] = config.encryption): Promise<Scope> {
  return { repo: await openRepository(config), dir, encryption, location: config.repository };
}

export function adminClient(cfg: S3RepositoryConfig): Promise<S3Client> {
  return s3Client(cfg);
}

export async function createBucket(c: S3Client, bucket: string): Promise<void> {
  await c.send(new CreateBucketCommand({ Bucket: bucket }));
}

/** Deletes a bucket and everything in it; a missing bucket is fine. */
export async function removeBucket(c: S3Client, bucket: string): Promise<void> {
  try {
    await deleteKeys(c, bucket, (await listAll(c, bucket, '')).map((o) => o.key));
    await c.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if (!isNoSuchBucket(err)) throw err;
  }
}

export async function removePrefix(c: S3Client, bucket: string, prefix: string): Promise<void> {
  await deleteKeys(c, bucket, (await listAll(c, bucket, prefix)).map((o) => o.key));
}

export async function putObjects(c: S3Client, bucket: string, objects: Record<string, string | Buffer>, concurrency = 32): Promise<void> {
  await forEachLimit(Object.entries(objects), concurrency, new AbortController().signal, async ([Key, Body]) => {
    await c.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Buffer.from(Body), ContentType: Key.endsWith('.json') ? 'application/json' : 'application/octet-stream' }));
  });
}

export async function getText(c: S3Client, bucket: string, key: string): Promise<string> {
  return (await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
}

/** key -> body of every object in a bucket. */
export async function snapshot(c: S3Client, bucket: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const o of await listAll(c, bucket, prefix)) out[o.key] = await getText(c, bucket, o.key);
  return out;
}

export const BLOCK = '01HXYZ5T8Y4Q3M2N1P0R9S8T7V';
export const DELETED_BLOCK = '01HXYZ0000DELETED000000000';

/** A Mimir-like tenant: one complete block, one marked for deletion, global markers, a bucket index, plus odds and ends. */
export function thanosLayout(tag: string): Record<string, string> {
  return {
    [`tenant-a/${BLOCK}/chunks/000001`]: `chunks 1 ${tag} ${'x'.repeat(3000)}`,
    [`tenant-a/${BLOCK}/chunks/000002`]: `chunks 2 ${tag}`,
    [`tenant-a/${BLOCK}/index`]: `index ${tag}`,
    [`tenant-a/${BLOCK}/meta.json`]: JSON.stringify({ ulid: BLOCK, tag }),
    [`tenant-a/${DELETED_BLOCK}/chunks/000001`]: `old chunks ${tag}`,
    [`tenant-a/${DELETED_BLOCK}/index`]: `old index ${tag}`,
    [`tenant-a/${DELETED_BLOCK}/meta.json`]: JSON.stringify({ ulid: DELETED_BLOCK }),
    [`tenant-a/${DELETED_BLOCK}/deletion-mark.json`]: JSON.stringify({ id: DELETED_BLOCK, deletion_time: 1 }),
    [`tenant-a/markers/${DELETED_BLOCK}-deletion-mark.json`]: '{}',
    'tenant-a/bucket-index.json.gz': 'gz',
    'bundles/app.tar.gz': `bundle ${tag}`,
    'empty.txt': '',
    'folder/': '',
    'odd name/with spaces & ünïcode.txt': `odd ${tag}`,
  };
}

/** A backup as the backupItem activity runs it: the store's stream through the artifact pipeline. */
export interface PipelineBackup {
  item: BackupItem;
  key: string;
  record: Pick<ArtifactRecord, 'sha256' | 'encryption' | 'bytes'>;
  progress: Progress[];
}

export const quietCtx = (): StoreContext => ({ signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: () => undefined } });

let clock = Date.now();
/** Backup ids that sort in the order they were made, as real ones do. */
export function nextBackupId(): string {
  clock += 1000;
  return makeBackupId(new Date(clock), randomBytes(2).toString('hex'));
}

export async function backupThroughPipeline(store: Store, scope: Scope, backupId = nextBackupId()): Promise<PipelineBackup> {
  const progress: Progress[] = [];
  const ctx: StoreContext = { ...quietCtx(), progress: (p) => progress.push(p), repository: { ...scope, backupId } };
  const [item] = await store.items(ctx);
  const file = scope.encryption ? `${item!.file}.age` : item!.file;
  const key = `${scope.dir}/${backupId}/${file}`;
  let stored = { bytes: 0, sha256: '' };
  await store.backup(ctx, item!, async (plaintext) => {
    stored = await storeArtifact(scope.repo, key, plaintext, scope.encryption);
  });
  return { item: item!, key, record: { ...stored, encryption: scope.encryption ? 'age' : 'none' }, progress };
}

/** A restore as the restoreItem activity runs it: the verified plaintext of the index into store.restore. */
export async function restoreThroughPipeline(store: Store, scope: Scope, b: PipelineBackup, into: string, ctx: StoreContext = quietCtx()): Promise<void> {
  const plaintext = await readArtifact(scope.repo, b.key, b.record as ArtifactRecord, await loadIdentities(scope.encryption));
  await store.restore({ ...ctx, repository: scope }, b.item, into, plaintext);
}

let env: ReturnType<typeof bucketEnv> | undefined;
const contractEnv = () => (env ??= bucketEnv('contractbucket'));
const bucket = uniqueBucket('contract');
const options = async (): Promise<BucketStoreOptions> => ({ repository: await scopeFor(contractEnv().config, 'contract-bucket') });

export const bucketKind: ContractKind = {
  kind: 'bucket',
  async setup() {
    const { repo, config } = contractEnv();
    const c = await adminClient(repo);
    await createBucket(c, bucket);
    await putObjects(c, bucket, thanosLayout('contract'));
    return new BucketStore(config.file, bucketTarget(repo, 'contract-bucket', bucket), await options());
  },
  async badCredentials() {
    const { repo, config } = contractEnv();
    process.env.LIFEBOAT_CONTRACT_BAD_S3_KEY = 'not-a-key';
    process.env.LIFEBOAT_CONTRACT_BAD_S3_SECRET = 'not-a-secret';
    const t = bucketTarget(repo, 'contract-bucket', bucket, { accessKeyId: { env: 'LIFEBOAT_CONTRACT_BAD_S3_KEY' }, secretAccessKey: { env: 'LIFEBOAT_CONTRACT_BAD_S3_SECRET' } });
    return new BucketStore(config.file, t, await options());
  },
  async teardown() {
    const { repo } = contractEnv();
    const c = await adminClient(repo);
    await removeBucket(c, bucket);
    await removeBucket(c, 'lifeboat-drill-c0ffee01');
    await removePrefix(c, repo.bucket, `${repo.prefix}/`);
  },
};
