import type { Readable } from 'node:stream';
import {
  DeleteBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { TargetConfig } from '../../config';
import { makeBackupId } from '../../domain/names';
import { LifeboatError } from '../../errors';
import type { BackupItem, MarkerCount, ProbeResult, RestoreOptions, Store, StoreContext } from '../types';
import { backupBucket } from './backup';
import { inspectIndex } from './inspect';
import { INDEX_FORMAT, indexStream, readIndex } from './object-index';
import { poolGarbage, type Scope } from './pool';
import { planBucketRestore, restoreBucket, type RestoreDeps } from './restore';
import { deleteKeys, describeS3, isNoSuchBucket, isPermanentS3, listAll, makeClient } from './s3';
import { isMarker } from './select';
import { parseBucketSettings, validBucketName, type BucketSettings } from './settings';
import { forEachLimit, roomFor, scoped } from './work';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const SDK_VERSION: string = require('@aws-sdk/client-s3/package.json').version;

/** The S3 API has one version; the server rarely says more about itself than its name. */
const S3_API = 'S3 API 2006-03-01';
const SCRATCH = 'lifeboat-drill-';
/** A dry run lists at most this many keys (the plan travels in the workflow's history). */
const PREVIEW_LINES = 2000;

export interface BucketStoreOptions {
  /** The repository to use when the context has none: for tests and benchmarks outside an activity. */
  repository?: Scope;
  /** Observes the restore's phases (tests). */
  onRestorePhase?: RestoreDeps['onPhase'];
}

/**
 * An S3 bucket or prefix on any S3-compatible endpoint (docs/bucket.md).
 * Objects go to a content pool in the repository, copied only when new or
 * changed; the item's artifact is the index of one backup's objects.
 */
export class BucketStore implements Store {
  readonly kind = 'bucket';
  readonly target: string;
  private readonly s: BucketSettings;
  private clientPromise?: Promise<S3Client>;

  constructor(
    configFile: string,
    t: TargetConfig,
    private readonly opts: BucketStoreOptions = {},
  ) {
    this.target = t.name;
    this.s = parseBucketSettings(configFile, t);
  }

  private client(): Promise<S3Client> {
    return (this.clientPromise ??= makeClient(this.s, `targets.${this.target}`, this.s.concurrency * 2 + 8));
  }

  private where(bucket: string): string {
    return `s3://${bucket}/${this.s.prefix} at ${this.s.endpoint ?? `AWS ${this.s.region}`} (target ${this.target})`;
  }

  /** Runs an S3 call, turning refusals into errors that name the bucket and what to check. */
  private async call<T>(bucket: string, fn: (c: S3Client) => Promise<T>): Promise<T> {
    const c = await this.client();
    try {
      return await fn(c);
    } catch (err) {
      throw describeS3(err, this.where(bucket), this.target);
    }
  }

  private scope(ctx: StoreContext): Scope {
    roomFor(ctx.signal, this.s.concurrency * 8 + 64);
    const r = ctx.repository ?? this.opts.repository;
    if (!r) throw new LifeboatError('ConfigError', `target ${this.target}: a bucket backup keeps its objects in the repository, but none was given`);
    if (r.encryption === undefined) {
      // Guessing here could store a bucket unencrypted: the caller must say.
      throw new LifeboatError('ConfigError', `target ${this.target}: the repository scope does not say how to encrypt; pass the config's encryption`);
    }
    return { repo: r.repo, dir: r.dir, encryption: r.encryption, compression: r.compression, location: r.location, backupId: r.backupId };
  }

  async probe(ctx: StoreContext): Promise<ProbeResult> {
    let server = '';
    await this.call(this.s.bucket, (c) => {
      const cmd = new ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: this.s.prefix || undefined, MaxKeys: 1 });
      cmd.middlewareStack.add(
        (next) => async (args) => {
          const out = await next(args);
          server = (out.response as { headers?: Record<string, string> }).headers?.server ?? '';
          return out;
        },
        { step: 'deserialize', name: 'lifeboatServerHeader' },
      );
      return c.send(cmd, { abortSignal: ctx.signal });
    });
    return {
      // Node's S3 client speaks HTTP/1.1; the version of the server software is not exposed by S3.
      serverVersion: `${server || 'S3'} (${S3_API}, HTTP/1.1)`,
      tools: { '@aws-sdk/client-s3': SDK_VERSION },
      capabilities: [INDEX_FORMAT, 'incremental-pool', 'two-phase-restore'],
    };
  }

  async items(_ctx?: StoreContext): Promise<BackupItem[]> {
    const { bucket, prefix, endpoint, region } = this.s;
    return [{ item: `bucket:${bucket}/${prefix}`, name: bucket, file: `${bucket}.index.jsonl`, format: INDEX_FORMAT, meta: { endpoint: endpoint ?? `aws:${region}`, bucket, prefix } }];
  }

  /**
   * Copies new and changed objects into the pool, then streams the index to
   * `sink`. Facts for the manifest (counts, the refs file) go into item.meta.
   * Idempotent and resumable: a retry reuses what the crashed attempt copied.
   */
  async backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    const scope = this.scope(ctx);
    // Outside a backup activity (tests) there is no backup id: make one, as the workflow would.
    const backupId = scope.backupId ?? makeBackupId(new Date(), Math.random().toString(16).slice(2, 6));
    const { header, entries, stats } = await this.call(this.s.bucket, async (client) =>
      backupBucket({ ctx, client, s: this.s, target: this.target, item: item.item, scope: { ...scope, backupId } }),
    );
    ctx.log.info('bucket objects in the pool', { target: this.target, ...stats });
    ctx.progress({ stage: 'index', item: item.item, objects: entries.length, totalObjects: entries.length });
    await sink(indexStream(header, entries));
    item.meta = { ...item.meta, ...stats };
  }

  /**
   * Makes bucket `into` (created if missing) hold, under the target's prefix,
   * exactly the backup (or, with `subPrefix`, just that part of it, e.g. one
   * tenant): data objects first, completion markers last, objects the backup
   * lacks deleted. Idempotent: a retry skips identical objects.
   */
  async restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable, options: RestoreOptions = {}): Promise<void> {
    validBucketName('restore bucket', into);
    const scope = this.scope(ctx);
    ctx.progress({ stage: 'read index', item: item.item });
    const { header, entries } = await readIndex(source);
    const stats = await this.call(into, (client) => restoreBucket({ ctx, client, s: this.s, item: item.item, scope, into, subPrefix: options.subPrefix, onPhase: this.opts.onRestorePhase }, header, entries));
    ctx.log.info('bucket restored', { target: this.target, into, ...stats });
  }

  /** A dry run's answer: every key a restore into `into` would write or delete, and nothing outside the (sub-)prefix. Read-only. */
  async preview(ctx: StoreContext, item: BackupItem, into: string, source: Readable, options: RestoreOptions = {}): Promise<string[]> {
    validBucketName('restore bucket', into);
    const { header, entries } = await readIndex(source);
    const p = await this.call(into, (client) => planBucketRestore({ ctx, client, s: this.s, item: item.item, into, subPrefix: options.subPrefix }, header, entries));
    const where = `s3://${into}/${this.s.prefix}${options.subPrefix ?? ''}`;
    const lines = [
      `${where}: write ${p.data.length + p.markerWrites.length}, delete ${p.extra.length}, unchanged ${p.unchanged}; nothing outside ${where} is read, written or deleted`,
      ...[...p.data, ...p.markerWrites].map((e) => `write  ${this.s.prefix}${e.key}`),
      ...p.extra.map((k) => `delete ${this.s.prefix}${k}`),
    ];
    return lines.length > PREVIEW_LINES ? [...lines.slice(0, PREVIEW_LINES), `… and ${lines.length - PREVIEW_LINES} more keys`] : lines;
  }

  /** For `lifeboat verify`: reads every pool object the index names and checks it. Read-only. */
  async inspect(ctx: StoreContext, item: BackupItem, plaintext: Readable): Promise<string> {
    return inspectIndex(ctx, this.scope(ctx), item.item, plaintext, this.s.concurrency);
  }

  drillName(): string {
    return this.s.bucket;
  }

  scratchName(token: string): string {
    return validBucketName('scratch bucket', `${SCRATCH}${token.toLowerCase()}`);
  }

  /**
   * Deletes every object under the prefix in bucket `name` (completion
   * markers first, so no half-deleted block looks complete); a drill's scratch
   * bucket is deleted whole. Idempotent: a missing bucket is already dropped.
   */
  async drop(ctx: StoreContext, name: string): Promise<void> {
    validBucketName('bucket', name);
    const scratch = name.startsWith(SCRATCH);
    ctx.progress({ stage: 'drop', item: name });
    await this.call(name, async (client) => {
      let keys: string[];
      try {
        keys = (await listAll(client, name, scratch ? '' : this.s.prefix, ctx.signal)).map((o) => o.key);
      } catch (err) {
        if (isNoSuchBucket(err)) return;
        throw err;
      }
      const rel = (k: string) => (k.startsWith(this.s.prefix) ? k.slice(this.s.prefix.length) : k);
      await deleteKeys(client, name, keys.filter((k) => isMarker(rel(k), this.s.completionMarkers)), ctx.signal);
      await deleteKeys(client, name, keys.filter((k) => !isMarker(rel(k), this.s.completionMarkers)), ctx.signal);
      if (scratch) {
        await client.send(new DeleteBucketCommand({ Bucket: name }), { abortSignal: ctx.signal }).catch((err: unknown) => {
          if (!isNoSuchBucket(err)) throw err;
        });
      }
    });
  }

  private markerFolder(nonce: string): string {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(nonce)) throw new LifeboatError('InvalidName', `drill nonce ${JSON.stringify(nonce)} is not letters, digits and '-'`);
    return `${this.s.prefix}${this.s.drillPrefix}${nonce}/`;
  }

  /**
   * Writes `<prefix><drillPrefix><nonce>/<seq>.json`, the nonce in each body,
   * after removing the markers of drills more than a day old: the folder in
   * the live bucket holds one night's markers, not a growing pile. Idempotent
   * (same nonce, same objects).
   */
  async seedMarkers(ctx: StoreContext, name: string, count: number, nonce: string): Promise<void> {
    roomFor(ctx.signal, this.s.concurrency * 8 + 64);
    const dir = this.markerFolder(nonce);
    const dayAgo = Date.now() - 86_400_000;
    await this.call(name, async (client) => {
      const root = `${this.s.prefix}${this.s.drillPrefix}`;
      // Only what the drill itself writes, <nonce>/<seq>.json: anything else in the folder is not lifeboat's and stays.
      const marker = new RegExp(`^${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[A-Za-z0-9-]{1,64}/\\d+\\.json$`);
      const old = (await listAll(client, name, root, ctx.signal)).filter((o) => marker.test(o.key) && !o.key.startsWith(dir) && o.lastModified !== '' && Date.parse(o.lastModified) < dayAgo);
      await deleteKeys(client, name, old.map((o) => o.key), ctx.signal);
    });
    const seqs = Array.from({ length: count }, (_, i) => i + 1);
    await this.call(name, (client) =>
      forEachLimit(seqs, this.s.concurrency, ctx.signal, async (seq) => {
        const body = `${JSON.stringify({ lifeboat: 'drill-marker', nonce, seq })}\n`;
        await scoped(ctx.signal, (signal) => client.send(new PutObjectCommand({ Bucket: name, Key: `${dir}${seq}.json`, Body: body, ContentType: 'application/json' }), { abortSignal: signal }));
      }),
    );
  }

  /** Lists the nonce's markers in `name` and reads each: only bodies with the nonce count. None when the bucket is missing. Read-only. */
  async countMarkers(ctx: StoreContext, name: string, nonce: string): Promise<MarkerCount> {
    roomFor(ctx.signal, this.s.concurrency * 8 + 64);
    const dir = this.markerFolder(nonce);
    return this.call(name, async (client) => {
      let listed;
      try {
        listed = await listAll(client, name, dir, ctx.signal);
      } catch (err) {
        if (isNoSuchBucket(err)) return { found: [] };
        throw err;
      }
      const found: number[] = [];
      await forEachLimit(listed, this.s.concurrency, ctx.signal, async (o) => {
        const text = await scoped(ctx.signal, async (signal) => (await client.send(new GetObjectCommand({ Bucket: name, Key: o.key }), { abortSignal: signal })).Body!.transformToString());
        try {
          const m = JSON.parse(text) as { nonce?: string; seq?: number };
          if (m.nonce === nonce && Number.isInteger(m.seq) && o.key === `${dir}${m.seq}.json`) found.push(m.seq!);
        } catch {
          // not a marker body: does not count
        }
      });
      return { found: found.sort((a, b) => a - b) };
    });
  }

  async collectGarbage(ctx: StoreContext): Promise<{ deleted: number; locked: number }> {
    const { repo, dir } = this.scope(ctx);
    const garbage = await poolGarbage(repo, dir);
    const free: string[] = [];
    for (const key of garbage) if (!(await repo.lockedUntil(key))) free.push(key);
    ctx.progress({ stage: 'collect garbage', objects: free.length, totalObjects: garbage.length });
    await repo.delete(free);
    return { deleted: free.length, locked: garbage.length - free.length };
  }

  isPermanent(err: unknown): boolean {
    return isPermanentS3(err);
  }
}
