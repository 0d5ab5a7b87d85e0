import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, PutObjectRetentionCommand, type CopyObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { sealStream } from '../../crypto';
import { compressionPays, compressor, looksCompressed, SAMPLE_BYTES } from '../../repo/compress';
import type { StoreContext } from '../types';
import { Collect, SizeGate } from './gates';
import { INDEX_FORMAT, type IndexEntry, type IndexHeader } from './object-index';
import { listPool, poolKeyOf, poolPath, readLedger, repoS3, sealId, writeRefs, type RepoS3, type Scope, type Stored } from './pool';
import { copySource, endpointId, isNotFound, listAll, normEtag, s3Code, type CopyChecksumHeaders, type Listed } from './s3';
import { dirName, isMarker, selectObjects } from './select';
import type { BucketSettings } from './settings';
import { forEachLimit, LARGE, LARGE_AT_ONCE, Meter, scoped, Semaphore, SMALL } from './work';

/** CopyObject's limit; larger objects are streamed (multipart). */
const COPY_MAX = 5 * 1024 ** 3;

export interface BackupStats {
  objects: number;
  bytes: number;
  excluded: number;
  /** Objects copied into the pool by this backup (the rest were already there). */
  copied: number;
  copiedBytes: number;
  /** Of those, copied server-side. */
  serverSide: number;
  /** Listed, then gone before they could be copied (e.g. a compactor deleted them). */
  vanished: number;
  refs: string;
}

type Copied = Stored & { etag: string; size: number; pool: string };

interface Candidate extends Listed {
  rel: string;
  pool: string;
}

export interface BackupDeps {
  ctx: StoreContext;
  client: S3Client;
  s: BucketSettings;
  target: string;
  item: string;
  scope: Scope & { backupId: string };
}

/**
 * Copies what the pool lacks, data first and completion markers last (a
 * block whose data vanished meanwhile keeps no marker, so it is partial in the
 * backup rather than corrupt), writes the refs, and returns the index.
 * Resumable: a retry finds what a crashed attempt already put in the pool.
 */
export async function backupBucket(d: BackupDeps): Promise<{ header: IndexHeader; entries: IndexEntry[]; stats: BackupStats }> {
  const { ctx, client, s, scope } = d;
  const source = endpointId(s);
  const seal = sealId(scope.encryption);
  ctx.progress({ stage: 'list', item: d.item });
  const listed = await listAll(client, s.bucket, s.prefix, ctx.signal);
  const { kept, excluded } = selectObjects(
    listed.map((o) => ({ ...o, rel: o.key.slice(s.prefix.length) })),
    s,
  );
  const objects: Candidate[] = kept.map((o) => ({ ...o, pool: poolKeyOf(source, s.bucket, o.key, o.etag, o.size, seal) }));

  const inPool = await listPool(scope.repo, scope.dir);
  const ledger = await readLedger(scope.repo, scope.dir, new Set(objects.map((o) => o.pool).filter((p) => inPool.has(p))));
  const missing = objects.filter((o) => !ledger.has(o.pool));

  const rs = await repoS3(scope, s.concurrency * 2);
  const copier = new Copier(d, rs, source, inPool);
  const meter = new Meter(ctx, 'copy', d.item, missing.length, missing.reduce((n, o) => n + o.size, 0));
  meter.report(true);
  const results = new Map<string, Copied>();
  const vanished = new Set<string>();
  const large = new Semaphore(LARGE_AT_ONCE);
  const copyAll = (list: Candidate[]) =>
    forEachLimit(list, s.concurrency, ctx.signal, async (o) => {
      const r = o.size >= LARGE ? await large.use(() => copier.copy(o)) : await copier.copy(o);
      if (r === 'vanished') vanished.add(o.rel);
      else results.set(o.rel, r);
      meter.add(1, o.size);
    });
  await copyAll(missing.filter((o) => !isMarker(o.rel, s.completionMarkers)));
  await copyAll(missing.filter((o) => isMarker(o.rel, s.completionMarkers)));
  meter.report(true);

  // Folders (and their parents) where something vanished: their markers are left out.
  const broken = new Set<string>();
  for (const rel of vanished) for (let dir = dirName(rel); dir !== ''; dir = dirName(dir.slice(0, -1))) broken.add(dir);
  const entries: IndexEntry[] = [];
  for (const o of objects) {
    if (vanished.has(o.rel)) continue;
    if (isMarker(o.rel, s.completionMarkers) && broken.has(dirName(o.rel))) continue;
    const got = results.get(o.rel);
    const stored = got ?? ledger.get(o.pool)!;
    entries.push({
      key: o.rel,
      size: got?.size ?? o.size,
      etag: got?.etag ?? o.etag,
      lastModified: o.lastModified,
      ...(stored.contentType ? { contentType: stored.contentType } : {}),
      pool: got?.pool ?? o.pool,
      stored: stored.stored,
      sha256: stored.sha256,
      ...(stored.compression ? { compression: stored.compression } : {}),
    });
  }
  if (rs?.lock) await extendLocks(ctx, rs, scope, objects.filter((o) => ledger.has(o.pool)).map((o) => o.pool), s.concurrency);

  const refs = await writeRefs(scope.repo, scope.dir, scope.backupId, entries);
  const bytes = entries.reduce((n, e) => n + e.size, 0);
  const header: IndexHeader = {
    format: INDEX_FORMAT,
    source: { endpoint: s.endpoint ?? `aws:${s.region}`, bucket: s.bucket, prefix: s.prefix },
    encryption: scope.encryption ? 'age' : 'none',
    completionMarkers: s.completionMarkers,
    objects: entries.length,
    bytes,
    excluded,
    createdAt: new Date().toISOString(),
  };
  const copiedBytes = [...results.values()].reduce((n, r) => n + r.size, 0);
  const stats: BackupStats = { objects: entries.length, bytes, excluded, copied: results.size, copiedBytes, serverSide: copier.serverSide, vanished: vanished.size, refs };
  return { header, entries, stats };
}

/**
 * Reused pool objects keep the Object Lock retention they were written with;
 * a backup that depends on them extends it, or a lock that protects the new
 * backup's own files would not protect its oldest objects.
 */
async function extendLocks(ctx: StoreContext, rs: RepoS3, scope: Scope, pools: string[], concurrency: number): Promise<void> {
  const lock = rs.lock!;
  const until = new Date(Date.now() + lock.days * 86_400_000);
  ctx.progress({ stage: 'extend object locks', objects: 0, totalObjects: pools.length });
  await forEachLimit([...new Set(pools)], concurrency, ctx.signal, async (pool) => {
    const Key = rs.key(poolPath(scope.dir, pool));
    await scoped(ctx.signal, (signal) => rs.client.send(new PutObjectRetentionCommand({ Bucket: rs.bucket, Key, Retention: { Mode: lock.mode, RetainUntilDate: until } }), { abortSignal: signal }));
  });
}

/** With Object Lock on the repository, what every object lifeboat writes there carries. */
function lockParams(rs: RepoS3): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date } {
  return rs.lock ? { ObjectLockMode: rs.lock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + rs.lock.days * 86_400_000) } : {};
}

class Copier {
  serverSide = 0;
  private copyOff: boolean;

  constructor(
    private readonly d: BackupDeps,
    private readonly rs: RepoS3 | undefined,
    private readonly source: string,
    private readonly inPool: Set<string>,
  ) {
    // A server-side copy cannot encrypt, and cannot cross endpoints.
    this.copyOff = !rs || d.scope.encryption !== null || endpointId(rs) !== source;
  }

  copy(o: Candidate): Promise<Copied | 'vanished'> {
    return scoped(this.d.ctx.signal, async (signal) => {
      if (!this.copyOff && o.size <= COPY_MAX) {
        const r = await this.serverCopy(o, signal);
        if (r !== 'stream') return r;
      }
      return this.stream(o, signal);
    });
  }

  private async serverCopy(o: Candidate, signal: AbortSignal): Promise<Copied | 'vanished' | 'stream'> {
    const { s, scope } = this.d;
    const rs = this.rs!;
    const Key = rs.key(poolPath(scope.dir, o.pool));
    try {
      const copied = (await rs.client.send(
        new CopyObjectCommand({ Bucket: rs.bucket, Key, CopySource: copySource(s.bucket, o.key), CopySourceIfMatch: `"${o.etag}"`, ChecksumAlgorithm: 'SHA256', ...lockParams(rs) }),
        { abortSignal: signal },
      )) as CopyObjectCommandOutput & CopyChecksumHeaders;
      // AWS returns the new object's SHA-256 in the body, MinIO in a header: either saves a HEAD per object.
      let b64 = copied.CopyObjectResult?.ChecksumSHA256 ?? copied.checksumHeader?.sha256;
      let type = copied.CopyObjectResult?.ChecksumType ?? copied.checksumHeader?.type;
      if (!b64) {
        const head = await rs.client.send(new HeadObjectCommand({ Bucket: rs.bucket, Key, ChecksumMode: 'ENABLED' }), { abortSignal: signal });
        b64 = head.ChecksumSHA256;
        type = head.ChecksumType;
      }
      if (!b64) {
        this.disable(`${rs.endpoint ?? 'the repository'} gives no SHA-256 for copied objects`);
        return 'stream';
      }
      // Only a full-object SHA-256 will do (a composite one covers parts, and reads "<b64>-<parts>").
      if (b64.includes('-') || (type !== undefined && type !== 'FULL_OBJECT')) return 'stream';
      this.serverSide++;
      // The Content-Type stays in the pool object's own metadata (a copy keeps it); the restore reads it there.
      return { stored: o.size, sha256: Buffer.from(b64, 'base64').toString('hex'), etag: o.etag, size: o.size, pool: o.pool };
    } catch (err) {
      const code = s3Code(err);
      if (code === 'NoSuchKey') return 'vanished';
      if (code === 'PreconditionFailed') return 'stream'; // changed since listed: the GET reads what it is now
      if (code === 'AccessDenied' || code === 'NotImplemented' || code === 'InvalidRequest') {
        this.disable(`server-side copy into the repository failed (${code})`);
        return 'stream';
      }
      throw err;
    }
  }

  private disable(why: string): void {
    if (this.copyOff) return;
    this.copyOff = true;
    this.d.ctx.log.warn(`${why}; streaming the remaining objects of target ${this.d.target} instead`);
  }

  /** GET -> (age) -> repository PUT. The pool key follows the bytes actually read, even if the object changed since listed. */
  private async stream(o: Candidate, signal: AbortSignal): Promise<Copied | 'vanished'> {
    const { client, s, scope } = this.d;
    let got;
    try {
      got = await client.send(new GetObjectCommand({ Bucket: s.bucket, Key: o.key }), { abortSignal: signal });
    } catch (err) {
      if (isNotFound(err)) return 'vanished';
      throw err;
    }
    const body = got.Body as Readable;
    const etag = normEtag(got.ETag) || o.etag;
    const size = got.ContentLength ?? o.size;
    const pool = etag === o.etag && size === o.size ? o.pool : poolKeyOf(this.source, s.bucket, o.key, etag, size, sealId(scope.encryption));
    if (pool !== o.pool && this.inPool.has(pool)) {
      // Changed since listed, into a version the pool already has: a backup may depend on that object, so reuse it, never overwrite it.
      const known = (await readLedger(scope.repo, scope.dir, new Set([pool]))).get(pool);
      if (known) {
        body.destroy();
        return { ...known, etag, size, pool };
      }
    }
    const gate = new SizeGate(size, `s3://${s.bucket}/${o.key}`);
    const out = scope.encryption ? sealStream(scope.encryption.recipients) : new PassThrough();
    const contentType = got.ContentType ? { contentType: got.ContentType } : {};
    const { source: plain, compress } = await this.worthCompressing(body, o.key, got.ContentType);
    const zipped = compress ? compressor(scope.compression!) : new PassThrough();
    const how = compress ? { compression: 'zstd' as const } : {};
    if (this.rs && size < SMALL) {
      const sink = new Collect();
      await pipeline(plain, gate, zipped, out, sink, { signal });
      const bytes = sink.bytes();
      await this.rs.client.send(
        new PutObjectCommand({ Bucket: this.rs.bucket, Key: this.rs.key(poolPath(scope.dir, pool)), Body: bytes, ContentLength: bytes.length, ContentMD5: createHash('md5').update(bytes).digest('base64'), ...lockParams(this.rs) }),
        { abortSignal: signal },
      );
      return { stored: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), etag, size, pool, ...contentType, ...how };
    }
    pipeline(plain, gate, zipped, out).catch(() => undefined); // a failure destroys `out`, which aborts the upload
    const put = await scope.repo.put(poolPath(scope.dir, pool), out, signal);
    return { stored: put.bytes, sha256: put.sha256, etag, size, pool, ...contentType, ...how };
  }

  /**
   * Whether to compress an object on its way into the pool: not when the
   * config says none, not when its name or type says it is compressed already,
   * and otherwise only if its first 128 KiB shrink by a tenth. Returns the
   * stream again with what was read of it in front.
   */
  private async worthCompressing(body: Readable, key: string, contentType?: string): Promise<{ source: Readable; compress: boolean }> {
    const c = this.d.scope.compression;
    if (!c || c.algorithm === 'none' || looksCompressed(key, contentType)) return { source: body, compress: false };
    const head: Buffer[] = [];
    let n = 0;
    const it = body[Symbol.asyncIterator]();
    let done = false;
    while (n < SAMPLE_BYTES) {
      const r = await it.next();
      if (r.done) {
        done = true;
        break;
      }
      head.push(r.value as Buffer);
      n += (r.value as Buffer).length;
    }
    const sample = Buffer.concat(head);
    const rest = async function* () {
      yield sample;
      if (done) return;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value as Buffer;
    };
    return { source: Readable.from(rest(), { objectMode: false }), compress: compressionPays(sample.subarray(0, SAMPLE_BYTES), c.level) };
  }
}
