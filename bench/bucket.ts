/**
 * Bucket backup vs `rclone sync`, on the local stack's MinIO: fills a fresh
 * bucket with N small objects, times lifeboat's backup of it (the store and
 * the artifact pipeline, as the backupItem activity runs them, `encryption:
 * none` to compare like with like), then `rclone sync` of the same bucket to
 * another bucket on the same MinIO, then lifeboat's re-run with nothing
 * changed, and an encrypted backup for reference.
 *
 *   eval "$(bash scripts/stack.sh env)"
 *   npx tsc -p tsconfig.json --outDir /tmp/bench-build
 *   NODE_PATH=$PWD/node_modules node /tmp/bench-build/bench/bucket.js [objects=10000] [concurrency=32] [rounds=3]
 *
 * (NODE_PATH: the build folder is outside the checkout, so Node would not find node_modules.)
 *
 * Measured on the 2-core stack machine, 10,000 objects of 0.5-1.3 KiB,
 * concurrency 32, medians of 3 alternating rounds (2026-11-25):
 *
 *   machine quiet (load ~1):  lifeboat 13.3 s, rclone 14.6 s, ratio 0.91;
 *                             re-run 1.2 s (9%); age-encrypted 30.5 s
 *   shared (load 5-10):       ratio 1.2-1.4 (e.g. 33.3 s vs 27.4 s; 26.1 s vs 18.6 s);
 *                             re-run 7%; age-encrypted 49-116 s
 *
 * lifeboat makes one request per object (a server-side CopyObject whose
 * response carries the SHA-256); rclone makes two (copy, then HEAD). The
 * difference under load is client CPU: about 1.0-1.3 s per 1,000 objects for
 * the AWS SDK for JavaScript, about a third of that for rclone, competing with
 * MinIO for the same two cores. Concurrency 16 and 64 were slower than 32 here.
 */
import { constants as zlibConstants, zstdCompressSync } from 'node:zlib';
import { DEFAULT_COMPRESSION } from '../src/domain/compression';
import type { Repository } from '../src/repo';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, DeleteBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { resolveSecret, type Config, type S3RepositoryConfig, type TargetConfig } from '../src/config';
import { loadConfig } from '../src/config/load';
import { makeBackupId } from '../src/domain/names';
import { openRepository } from '../src/repo';
import { storeArtifact } from '../src/repo/artifacts';
import { s3Client } from '../src/repo/s3';
import { BucketStore } from '../src/stores/bucket';
import type { Scope } from '../src/stores/bucket/pool';
import { deleteKeys, isNoSuchBucket, listAll } from '../src/stores/bucket/s3';
import { forEachLimit } from '../src/stores/bucket/work';
import type { StoreContext } from '../src/stores';

const run = promisify(execFile);

export interface BucketBenchResult {
  objects: number;
  /** Medians over the rounds: lifeboat and rclone run alternately, so both see the same load. */
  lifeboatSeconds: number;
  rcloneSeconds: number;
  ratio: number;
  rerunSeconds: number;
  rerunFraction: number;
  /** The same first backup with age encryption (GET -> seal -> PUT, no server-side copy). */
  encryptedSeconds: number;
  /** rclone with its default --transfers 4 --checkers 8, for reference. */
  rcloneDefaultSeconds: number;
  concurrency: number;
  samples: { lifeboat: number[]; rclone: number[] };
  /** CPU seconds (user + system) lifeboat's process spent in its median round. */
  lifeboatCpuSeconds: number;
  /**
   * Size: an encrypted, compressed backup of a mixed bucket (JSON-like text and
   * random bytes, like a tenant's index and chunks) against `zstd -3` of each
   * object: the pool's bytes over zstd's. Target <= 1.1.
   */
  artifactBytes: number;
  zstdBytes: number;
  zstdRatio: number;
}

/** A bucket target like the stack's `bundles` (its endpoint and credential files), on another bucket. */
function benchTarget(config: Config, name: string, settings: Record<string, unknown>): TargetConfig {
  const bundles = config.targets.get('bundles');
  if (bundles?.kind !== 'bucket') throw new Error(`${config.file} has no bucket target 'bundles' to take the endpoint and credentials from`);
  return { ...bundles, name, settings: { ...bundles.settings, ...settings } };
}

/** The pool of a compressed, encrypted backup of a mixed bucket, against zstd -3 of each object. */
async function sizeFigure(c: S3Client, repo: Repository, repoCfg: S3RepositoryConfig, base: Config, tag: string): Promise<{ artifactBytes: number; zstdBytes: number; zstdRatio: number }> {
  const bucket = `lb-bench-${tag}-mixed`;
  await c.send(new CreateBucketCommand({ Bucket: bucket }));
  try {
    const bodies: Array<[string, Buffer]> = [];
    for (let i = 0; i < 200; i++) {
      const text = Array.from({ length: 250 }, (_, j) => JSON.stringify({ ts: 1_700_000_000 + i * 1000 + j, tenant: `t${i % 7}`, series: `http_requests_total{code="${200 + (j % 5)}",path="/api/v${j % 3}/items/${(i * j) % 97}"}`, v: (i * j) % 1013 })).join('\n');
      bodies.push([`tenant-${i % 7}/block-${i}/index.json`, Buffer.from(text)]);
      bodies.push([`tenant-${i % 7}/block-${i}/chunks/000001`, randomBytes(64 * 1024)]);
    }
    await forEachLimit(bodies, 32, new AbortController().signal, ([Key, Body]) => c.send(new PutObjectCommand({ Bucket: bucket, Key, Body })).then(() => undefined));
    const zstdBytes = bodies.reduce((n, [, b]) => n + zstdCompressSync(b, { params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 } }).length, 0);
    const store = new BucketStore(base.file, benchTarget(base, 'bench-mixed', { bucket }));
    const scope: Scope = { repo, dir: 'bench-mixed', encryption: base.encryption, compression: base.compression ?? DEFAULT_COMPRESSION, location: repoCfg };
    await backupOnce(store, scope, makeBackupId(new Date(), randomBytes(2).toString('hex')));
    const pool = await listAll(c, repoCfg.bucket, `${repoCfg.prefix}/bench-mixed/objects/`);
    const artifactBytes = pool.reduce((n, o) => n + o.size, 0);
    return { artifactBytes, zstdBytes, zstdRatio: Math.round((artifactBytes / zstdBytes) * 1000) / 1000 };
  } finally {
    await emptyBucket(c, bucket);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const secs = (t: bigint) => Math.round(Number(process.hrtime.bigint() - t) / 1e7) / 100;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return secs(t);
}

async function emptyBucket(c: S3Client, bucket: string): Promise<void> {
  try {
    await deleteKeys(c, bucket, (await listAll(c, bucket, '')).map((o) => o.key));
    await c.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if (!isNoSuchBucket(err)) throw err;
  }
}

/** One backup as the backupItem activity does it: items, then backup with a sink that stores the index artifact. */
async function backupOnce(store: BucketStore, scope: Scope, backupId: string): Promise<Record<string, unknown>> {
  const ctx: StoreContext = {
    signal: new AbortController().signal,
    progress: () => undefined,
    log: { info: () => undefined, warn: (m) => process.stderr.write(`[bench] warning: ${m}\n`) },
    repository: { ...scope, backupId },
  };
  const [item] = await store.items(ctx);
  const file = scope.encryption ? `${item!.file}.age` : item!.file;
  await store.backup(ctx, item!, async (plaintext) => {
    await storeArtifact(scope.repo, `${scope.dir}/${backupId}/${file}`, plaintext, scope.encryption);
  });
  return item!.meta ?? {};
}

async function rcloneSync(repo: S3RepositoryConfig, from: string, to: string, flags: string[]): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-bench-rclone-'));
  try {
    const conf = join(dir, 'rclone.conf');
    const key = await resolveSecret(repo.accessKeyId!, 'repository.accessKeyId');
    const secret = await resolveSecret(repo.secretAccessKey!, 'repository.secretAccessKey');
    await writeFile(conf, `[bench]\ntype = s3\nprovider = Minio\nenv_auth = false\naccess_key_id = ${key}\nsecret_access_key = ${secret}\nendpoint = ${repo.endpoint}\nregion = ${repo.region}\n`, { mode: 0o600 });
    const env = { ...process.env };
    delete env.AWS_CA_BUNDLE; // rclone refuses a CA bundle it cannot read; MinIO here is plain HTTP
    return await timed(() => run('rclone', ['--config', conf, 'sync', `bench:${from}`, `bench:${to}`, ...flags], { env, maxBuffer: 1 << 24 }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchBucket(opts: { objects: number; concurrency?: number; rounds?: number; config?: Config }): Promise<BucketBenchResult> {
  const base = opts.config ?? loadConfig();
  if (base.repository.kind !== 's3') throw new Error('the bucket benchmark needs an S3 repository (the local stack\'s MinIO)');
  const tag = randomBytes(4).toString('hex');
  const repoCfg: S3RepositoryConfig = { ...base.repository, prefix: `bench/bucket-${tag}` };
  const config: Config = { ...base, repository: repoCfg };
  const concurrency = opts.concurrency ?? 32;
  const rounds = opts.rounds ?? 3;
  const c = await s3Client(repoCfg);
  const source = `lb-bench-${tag}`;
  const copy = (n: number | string) => `lb-bench-${tag}-rclone-${n}`;
  const repo = await openRepository(config);
  try {
    process.stderr.write(`[bench] filling s3://${source} with ${opts.objects} objects\n`);
    await c.send(new CreateBucketCommand({ Bucket: source }));
    const keys = Array.from({ length: opts.objects }, (_, i) => `tenant-${i % 10}/block-${Math.floor(i / 100)}/chunks/${String(i).padStart(6, '0')}`);
    await forEachLimit(keys, 64, new AbortController().signal, async (Key) => {
      await c.send(new PutObjectCommand({ Bucket: source, Key, Body: randomBytes(512 + (Key.length % 7) * 128) }));
    });

    const store = new BucketStore(config.file, benchTarget(config, 'bench-bucket', { bucket: source, concurrency }));
    const plain = (n: number): Scope => ({ repo, dir: `bench-plain-${n}`, encryption: null, location: repoCfg });
    let clock = Date.now();
    const id = () => makeBackupId(new Date((clock += 1000)), randomBytes(2).toString('hex'));

    const samples = { lifeboat: [] as number[], rclone: [] as number[], cpu: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`[bench] round ${r + 1}/${rounds}: lifeboat backup (encryption none, concurrency ${concurrency}), then rclone sync (--transfers/--checkers ${concurrency})\n`);
      let meta: Record<string, unknown> = {};
      const cpu = process.cpuUsage();
      samples.lifeboat.push(await timed(async () => (meta = await backupOnce(store, plain(r), id()))));
      const used = process.cpuUsage(cpu);
      samples.cpu.push(Math.round((used.user + used.system) / 1e4) / 100);
      if (meta.copied !== opts.objects) throw new Error(`expected ${opts.objects} objects copied, got ${JSON.stringify(meta)}`);
      samples.rclone.push(await rcloneSync(repoCfg, source, copy(r), ['--transfers', String(concurrency), '--checkers', String(concurrency)]));
      await emptyBucket(c, copy(r));
    }
    process.stderr.write('[bench] rclone sync, default flags\n');
    const rcloneDefaultSeconds = await rcloneSync(repoCfg, source, copy('default'), []);

    process.stderr.write('[bench] lifeboat re-run, nothing changed\n');
    let meta: Record<string, unknown> = {};
    const rerunSeconds = await timed(async () => (meta = await backupOnce(store, plain(0), id())));
    if (meta.copied !== 0) throw new Error(`the re-run copied ${String(meta.copied)} objects`);

    process.stderr.write('[bench] lifeboat backup with age encryption\n');
    const encrypted: Scope = { repo, dir: 'bench-age', encryption: base.encryption, location: repoCfg };
    const encryptedSeconds = base.encryption ? await timed(() => backupOnce(store, encrypted, id())) : NaN;

    process.stderr.write('[bench] size: a mixed bucket, compressed and encrypted, against zstd -3 of each object\n');
    const size = await sizeFigure(c, repo, repoCfg, base, tag);

    const r2 = (x: number) => Math.round(x * 100) / 100;
    const lifeboatSeconds = median(samples.lifeboat);
    const rcloneSeconds = median(samples.rclone);
    return {
      objects: opts.objects,
      lifeboatSeconds,
      rcloneSeconds,
      ratio: r2(lifeboatSeconds / rcloneSeconds),
      rerunSeconds,
      rerunFraction: r2(rerunSeconds / lifeboatSeconds),
      encryptedSeconds,
      rcloneDefaultSeconds,
      concurrency,
      samples: { lifeboat: samples.lifeboat, rclone: samples.rclone },
      lifeboatCpuSeconds: samples.cpu[samples.lifeboat.indexOf(lifeboatSeconds)]!,
      ...size,
    };
  } finally {
    process.stderr.write('[bench] cleaning up\n');
    for (const b of [source, ...Array.from({ length: rounds }, (_, r) => copy(r)), copy('default')]) await emptyBucket(c, b);
    await deleteKeys(c, repoCfg.bucket, (await listAll(c, repoCfg.bucket, `${repoCfg.prefix}/`)).map((o) => o.key));
  }
}

if (require.main === module) {
  const objects = Number(process.argv[2] ?? 10_000);
  const concurrency = process.argv[3] ? Number(process.argv[3]) : undefined;
  const rounds = process.argv[4] ? Number(process.argv[4]) : undefined;
  benchBucket({ objects, concurrency, rounds }).then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
