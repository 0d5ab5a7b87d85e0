import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { resolveSecret, type S3RepositoryConfig } from '../config';
import { LifeboatError } from '../errors';
import { HashTap } from './hash-tap';
import { repositoryFull } from './full';
import type { Entry, PutResult, Repository } from './types';

export async function s3Client(cfg: Pick<S3RepositoryConfig, 'endpoint' | 'region' | 'forcePathStyle' | 'accessKeyId' | 'secretAccessKey'>): Promise<S3Client> {
  const credentials =
    cfg.accessKeyId && cfg.secretAccessKey
      ? {
          accessKeyId: await resolveSecret(cfg.accessKeyId, 'repository.accessKeyId'),
          secretAccessKey: await resolveSecret(cfg.secretAccessKey, 'repository.secretAccessKey'),
        }
      : undefined;
  return new S3Client({ endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: cfg.forcePathStyle, credentials });
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/** MinIO's and S3's ways of saying that no more bytes fit. */
function isStorageFull(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return ['XMinioStorageFull', 'StorageFull', 'InsufficientStorage', 'XMinioAdminBucketQuotaExceeded'].includes(e.name ?? e.Code ?? '') || e.$metadata?.httpStatusCode === 507;
}

export class S3Repository implements Repository {
  constructor(
    private readonly client: S3Client,
    private readonly cfg: S3RepositoryConfig,
  ) {}

  private key(key: string): string {
    return this.cfg.prefix ? `${this.cfg.prefix}/${key}` : key;
  }

  url(key: string): string {
    return `s3://${this.cfg.bucket}/${this.key(key)}`;
  }

  async put(key: string, body: Readable, signal?: AbortSignal): Promise<PutResult> {
    const tap = new HashTap();
    // Joined before anything awaits: a body that fails or closes early (a tool that died or was
    // cancelled at once) must fail the upload, which otherwise waits for its bytes forever.
    pipeline(body, tap).catch(() => undefined);
    try {
      // Given up here (cancelled first, or the repository unreachable), the body is ended too: its source stops.
      signal?.throwIfAborted();
      await this.abortStaleUploads(key);
      signal?.throwIfAborted();
    } catch (err) {
      tap.destroy();
      throw err;
    }
    // lib-storage reads the body part by part (partSize x queueSize in memory at most)
    // and completes the multipart upload only when the body ended without error;
    // on error it aborts the upload, so no partial object is ever visible.
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.cfg.bucket, Key: this.key(key), Body: tap, ...this.lockParams() },
      partSize: this.cfg.partSizeMB * 1024 * 1024,
      queueSize: this.cfg.queueSize,
      leavePartsOnError: false,
      abortController: signal ? abortControllerFor(signal) : undefined,
    });
    try {
      await upload.done();
    } catch (err) {
      // A cancelled or failed upload must not stay open (invisible, but taking space): end the body and
      // abort it here, since lib-storage only does so once its part uploaders have drained.
      tap.destroy();
      await this.abortStaleUploads(key).catch(() => undefined);
      if (isStorageFull(err)) throw repositoryFull(this.url(key), tap.bytes, (err as Error).message);
      throw err;
    }
    return { bytes: tap.bytes, sha256: tap.digest() };
  }

  /** With Object Lock configured, every object is written with a retention: it cannot be deleted or overwritten before then. */
  private lockParams(): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date } {
    const lock = this.cfg.objectLock;
    if (!lock) return {};
    return { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + lock.days * 86_400_000) };
  }

  async lockedUntil(key: string): Promise<Date | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.cfg.bucket, Key: this.key(key) }));
      const until = head.ObjectLockRetainUntilDate;
      return until && until.getTime() > Date.now() ? until : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * A worker killed mid-upload leaves its multipart upload open: invisible,
   * but its parts take space. The retry of the same key cleans them first.
   */
  private async abortStaleUploads(key: string): Promise<void> {
    const Key = this.key(key);
    const open = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.cfg.bucket, Prefix: Key }));
    for (const u of open.Uploads ?? []) {
      if (u.Key === Key && u.UploadId) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.cfg.bucket, Key, UploadId: u.UploadId }));
    }
  }

  /** Aborts every open multipart upload below `dir` (a target held by prune: nothing of it is being written). */
  async abortUploads(dir: string): Promise<number> {
    const prefix = this.key(`${dir}/`);
    let n = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.cfg.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.cfg.bucket, Key: u.Key, UploadId: u.UploadId }));
        n++;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return n;
  }

  async putText(key: string, text: string): Promise<PutResult> {
    return this.put(key, Readable.from([Buffer.from(text)]));
  }

  async get(key: string, signal?: AbortSignal): Promise<Readable> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.key(key) }), { abortSignal: signal });
      return out.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new LifeboatError('ArtifactNotFound', `${this.url(key)} does not exist`);
      throw err;
    }
  }

  async open(key: string, opts: { signal?: AbortSignal; pin?: string } = {}): Promise<{ body: Readable; pin: string }> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.key(key), ...(opts.pin ? { IfMatch: opts.pin } : {}) }), { abortSignal: opts.signal });
      return { body: out.Body as Readable, pin: out.ETag ?? '' };
    } catch (err) {
      if (isNotFound(err)) throw new LifeboatError('ArtifactNotFound', `${this.url(key)} does not exist`);
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) {
        throw new LifeboatError('ArtifactChanged', `${this.url(key)} was replaced after it was verified (ETag is no longer ${opts.pin}); it was not restored. Someone wrote to the repository during the restore: verify the backup again`);
      }
      throw err;
    }
  }

  async getText(key: string): Promise<string> {
    const chunks: Buffer[] = [];
    await pipeline(await this.get(key), async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) chunks.push(c);
    });
    return Buffer.concat(chunks).toString('utf8');
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.cfg.bucket, Key: this.key(key) }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await this.client.send(new HeadObjectCommand({ Bucket: this.cfg.bucket, Key: this.key(key) }))).ContentLength;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(dir: string): Promise<Entry[]> {
    const prefix = this.key(dir ? `${dir}/` : '');
    const entries: Entry[] = [];
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.cfg.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }),
      );
      for (const p of page.CommonPrefixes ?? []) entries.push({ name: p.Prefix!.slice(prefix.length, -1), dir: true });
      for (const o of page.Contents ?? []) entries.push({ name: o.Key!.slice(prefix.length), dir: false, ...(o.Size !== undefined ? { bytes: o.Size } : {}) });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return entries.sort((a, b) => a.name.localeCompare(b.name));
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000).map((k) => ({ Key: this.key(k) }));
      const out = await this.client.send(new DeleteObjectsCommand({ Bucket: this.cfg.bucket, Delete: { Objects: batch, Quiet: true } }));
      if (out.Errors?.length) {
        const e = out.Errors[0]!;
        throw new LifeboatError('DeleteFailed', `could not delete ${this.url(e.Key ?? '?')}: ${e.Code} ${e.Message}`);
      }
    }
  }
}

function abortControllerFor(signal: AbortSignal): AbortController {
  const ac = new AbortController();
  if (signal.aborted) ac.abort();
  else signal.addEventListener('abort', () => ac.abort(), { once: true });
  return ac;
}
