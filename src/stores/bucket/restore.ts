import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, PutObjectCommand, type BucketLocationConstraint, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { openStream } from '../../crypto';
import { LifeboatError } from '../../errors';
import { loadIdentities } from '../../repo/artifacts';
import { decompressor } from '../../repo/compress';
import type { StoreContext } from '../types';
import { Collect, SizeGate, StoredGate } from './gates';
import type { IndexEntry, IndexHeader } from './object-index';
import { poolPath, repoS3, type RepoS3, type Scope } from './pool';
import { deleteKeys, httpStatus, isNotFound, listAll, s3Code } from './s3';
import { dirName, isMarker } from './select';
import type { BucketSettings } from './settings';
import { forEachLimit, LARGE, LARGE_AT_ONCE, Meter, scoped, Semaphore, SMALL } from './work';

const PART = 8 * 1024 * 1024;

export interface RestoreDeps {
  ctx: StoreContext;
  client: S3Client;
  s: BucketSettings;
  item: string;
  scope: Scope;
  into: string;
  /** Only this part of the backup, and only this part of the destination, e.g. `tenant-a/`. */
  subPrefix?: string;
  /** Called between the phases (tests observe the bucket there). */
  onPhase?: (phase: 'data' | 'markers' | 'done') => void;
}

export interface RestoreStats {
  written: number;
  unchanged: number;
  deleted: number;
}

/** Creates the bucket if it is missing. Idempotent. */
export async function ensureBucket(client: S3Client, bucket: string, region: string, signal: AbortSignal): Promise<void> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal });
    return;
  } catch (err) {
    if (httpStatus(err) !== 404) throw err;
  }
  try {
    const conf = region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } };
    await client.send(new CreateBucketCommand({ Bucket: bucket, ...conf }), { abortSignal: signal });
  } catch (err) {
    if (s3Code(err) !== 'BucketAlreadyOwnedByYou') throw err;
  }
}

/** 'a/b/c' -> 'a/', 'a/b/' (every folder the key is in). */
function foldersOf(key: string, into: Set<string>): void {
  for (let i = key.indexOf('/'); i >= 0; i = key.indexOf('/', i + 1)) into.add(key.slice(0, i + 1));
}

/**
 * Makes `<into>/<prefix>` (or `<into>/<prefix><subPrefix>`) hold exactly the
 * backup (of that sub-prefix), in an order a consumer
 * that trusts completion markers (Thanos/Mimir `meta.json`) can watch:
 *
 *   1. hide: delete the destination's markers of folders that are about to
 *      change (or that the backup lacks), so no visible block changes under it;
 *   2. data: every object except markers, skipping ones already identical
 *      (same size and ETag), `concurrency` at a time;
 *   3. delete what the backup does not have;
 *   4. markers, last.
 *
 * A restore that fails at any point has written no marker of a folder it had
 * not finished. Idempotent and resumable: a retry skips what is already there.
 */
export interface BucketRestorePlan {
  /** Data objects to write (new or changed), markers excluded. */
  data: IndexEntry[];
  /** Completion markers to write, last. */
  markerWrites: IndexEntry[];
  /** Destination keys (relative to the prefix) the backup does not have: deleted. */
  extra: string[];
  /** Destination markers hidden first because their folder changes. */
  hide: string[];
  unchanged: number;
}

/**
 * What a restore would change in `<into>/<prefix><subPrefix>`: read-only. The
 * destination is listed under exactly that folder, so nothing outside it is
 * ever written or deleted (a sub-prefix is a folder: `tenant-a/` never
 * matches `tenant-ab/`).
 */
export async function planBucketRestore(d: Omit<RestoreDeps, 'scope' | 'onPhase'>, header: IndexHeader, all: IndexEntry[]): Promise<BucketRestorePlan> {
  const { ctx, client, s, into } = d;
  const markers = header.completionMarkers.length ? header.completionMarkers : s.completionMarkers;
  const sub = d.subPrefix ?? '';
  let existingList: Array<{ key: string; size: number; etag: string }> = [];
  try {
    existingList = await listAll(client, into, s.prefix + sub, ctx.signal);
  } catch (err) {
    if (httpStatus(err) !== 404) throw err; // a bucket that does not exist yet is empty
  }
  const existing = new Map(existingList.map((o) => [o.key.slice(s.prefix.length), o]));
  const entries = all.filter((e) => e.key.startsWith(sub));
  const wanted = new Map(entries.map((e) => [e.key, e]));
  const same = (e: IndexEntry) => {
    const x = existing.get(e.key);
    return x !== undefined && x.size === e.size && x.etag === e.etag && e.etag !== '';
  };
  const writes = entries.filter((e) => !same(e));
  const data = writes.filter((e) => !isMarker(e.key, markers));
  const extra = [...existing.keys()].filter((k) => !wanted.has(k));
  const extraData = extra.filter((k) => !isMarker(k, markers));
  const touched = new Set<string>();
  for (const k of [...data.map((e) => e.key), ...extraData]) foldersOf(k, touched);
  const hide = [...existing.keys()].filter((k) => isMarker(k, markers) && (!wanted.has(k) || !same(wanted.get(k)!) || touched.has(dirName(k))));
  const hidden = new Set(hide);
  const markerWrites = entries.filter((e) => isMarker(e.key, markers) && (!same(e) || hidden.has(e.key)));
  return { data, markerWrites, extra, hide, unchanged: entries.length - data.length - markerWrites.length };
}

/**
 * Makes `<into>/<prefix>` (or `<into>/<prefix><subPrefix>`) hold exactly the
 * backup (of that folder), in an order a consumer that trusts completion
 * markers (Thanos/Mimir `meta.json`) can watch:
 *
 *   1. hide: delete the destination's markers of folders that are about to
 *      change (or that the backup lacks), so no visible block changes under it;
 *   2. data: every object except markers, skipping ones already identical
 *      (same size and ETag), `concurrency` at a time;
 *   3. delete what the backup does not have;
 *   4. markers, last.
 *
 * A restore that fails at any point has written no marker of a folder it had
 * not finished. Idempotent and resumable: a retry skips what is already there.
 */
export async function restoreBucket(d: RestoreDeps, header: IndexHeader, all: IndexEntry[]): Promise<RestoreStats> {
  const { ctx, client, s, scope, into } = d;
  const identities = header.encryption === 'age' ? await ageIdentities(scope) : [];
  const rs = await repoS3(scope, s.concurrency * 2);

  await ensureBucket(client, into, s.region, ctx.signal);
  ctx.progress({ stage: 'list destination', item: d.item });
  const plan = await planBucketRestore(d, header, all);
  const markers = header.completionMarkers.length ? header.completionMarkers : s.completionMarkers;
  const extraData = plan.extra.filter((k) => !isMarker(k, markers));

  await deleteKeys(client, into, plan.hide.map((k) => s.prefix + k), ctx.signal);

  d.onPhase?.('data');
  const meter = new Meter(ctx, 'restore data', d.item, plan.data.length, plan.data.reduce((n, e) => n + e.size, 0));
  const large = new Semaphore(LARGE_AT_ONCE);
  const put = (list: IndexEntry[]) =>
    forEachLimit(list, s.concurrency, ctx.signal, async (e) => {
      await (e.size >= LARGE ? large.use(() => restoreOne(d, rs, header, identities, e)) : restoreOne(d, rs, header, identities, e));
      meter.add(1, e.size);
    });
  await put(plan.data);
  await deleteKeys(client, into, extraData.map((k) => s.prefix + k), ctx.signal);

  d.onPhase?.('markers');
  meter.reset('restore markers', plan.markerWrites.length, plan.markerWrites.reduce((n, e) => n + e.size, 0));
  await put(plan.markerWrites);
  meter.report(true);
  d.onPhase?.('done');
  return { written: plan.data.length + plan.markerWrites.length, unchanged: plan.unchanged, deleted: plan.extra.length };
}

async function ageIdentities(scope: Scope): Promise<string[]> {
  if (!scope.encryption) {
    throw new LifeboatError('ConfigError', `the objects of this backup are age-encrypted, but the config says 'encryption: none'; configure encryption with the identityFile that opens them`);
  }
  return loadIdentities(scope.encryption);
}

/**
 * A pool object's bytes, and its own Content-Type: a server-side copy kept the
 * source's metadata there instead of in the index.
 */
async function getPool(d: RestoreDeps, rs: RepoS3 | undefined, key: string, signal: AbortSignal): Promise<{ stored: Readable; contentType?: string }> {
  if (!rs) return { stored: await d.scope.repo.get(key, signal) };
  try {
    const out = await rs.client.send(new GetObjectCommand({ Bucket: rs.bucket, Key: rs.key(key) }), { abortSignal: signal });
    return { stored: out.Body as Readable, contentType: out.ContentType };
  } catch (err) {
    if (isNotFound(err)) throw new LifeboatError('ArtifactNotFound', `pool object ${d.scope.repo.url(key)} does not exist; the backup cannot be restored in full`);
    throw err;
  }
}

/** Pool object -> checksum -> (age) -> size check -> destination PUT; nothing is written if a check fails. */
function restoreOne(d: RestoreDeps, rs: RepoS3 | undefined, header: IndexHeader, identities: string[], e: IndexEntry): Promise<void> {
  const { client, s, scope, into } = d;
  return scoped(d.ctx.signal, async (signal) => {
    const key = poolPath(scope.dir, e.pool);
    const url = scope.repo.url(key);
    const pool = await getPool(d, rs, key, signal);
    const contentType = e.contentType ?? (header.encryption === 'none' ? pool.contentType : undefined);
    const opened = header.encryption === 'age' ? openStream(identities) : new PassThrough();
    const unzipped = decompressor(e.compression, url);
    const body = new SizeGate(e.size, `pool object '${url}' (s3://${into}/${s.prefix}${e.key})`);
    const type = contentType ? { ContentType: contentType } : {};
    if (e.size < SMALL) {
      // Checked in full before the PUT starts. Content-MD5 also satisfies buckets with Object Lock.
      const sink = new Collect();
      await pipeline(pool.stored, new StoredGate(url, e), opened, unzipped, body, sink, { signal });
      const bytes = sink.bytes();
      const md5 = createHash('md5').update(bytes).digest('base64');
      await client.send(new PutObjectCommand({ Bucket: into, Key: s.prefix + e.key, Body: bytes, ContentLength: bytes.length, ContentMD5: md5, ...type }), { abortSignal: signal });
      return;
    }
    pipeline(pool.stored, new StoredGate(url, e), opened, unzipped, body).catch(() => undefined); // a failure destroys `body`: the upload aborts
    const abortController = new AbortController();
    signal.addEventListener('abort', () => abortController.abort(), { once: true });
    await new Upload({
      client,
      params: { Bucket: into, Key: s.prefix + e.key, Body: body, ...type },
      partSize: PART,
      queueSize: 2,
      leavePartsOnError: false,
      abortController,
    }).done();
  });
}
