import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { constants, zstdCompressSync } from 'node:zlib';
import type { Config, S3RepositoryConfig } from '../../src/config';
import { artifactKey } from '../../src/domain/layout';
import { loadIdentities, readArtifact, storeArtifact } from '../../src/repo/artifacts';
import { readIndex } from '../../src/stores/bucket/object-index';
import { adminClient, bucketTarget, createBucket, removeBucket, uniqueBucket } from '../contract/bucket-kind';
import type { DrillResult, RestoreResult, VerifyResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { readManifest, writeManifest } from '../../src/repo/catalog';
import { idPrefixOf, signingKeyOf, stackConfig, trustOf, uniq } from '../helpers/env';
import { countRows, dropDatabase } from '../helpers/pg';
import { startHarness } from '../helpers/temporal';

/**
 * Every kind of the local stack round-trips with compression on and off, and
 * a backup made without compression (as every backup before it) restores with
 * a worker that compresses.
 */
jest.setTimeout(300_000);
const base = stackConfig();
const run = uniq('compression');
const config = (compression: Config['compression']): Config => ({
  ...base,
  compression,
  temporal: { ...base.temporal, taskQueue: `lifeboat-test-${run}` },
  schedules: { ...base.schedules!, idPrefix: idPrefixOf(run) },
  repository: base.repository.kind === 's3' ? { ...base.repository, prefix: `test/${run}` } : base.repository,
});
const targets = [...base.targets.keys()];

async function drill(c: Config): Promise<DrillResult> {
  const h = await startHarness(c);
  try {
    return await h.run<DrillResult>('drillWorkflow', { mode: 'scratch' });
  } finally {
    await h.stop();
  }
}

test('with compression off, every kind round-trips and its artifacts are stored as the store wrote them', async () => {
  const c = config({ algorithm: 'none', level: 0 });
  const r = await drill(c);
  expect(r.stores.map((s) => [s.target, s.markers.found === s.markers.expected])).toEqual(targets.map((t) => [t, true]));
  const repo = await openRepository(c);
  for (const t of targets) {
    const m = await readManifest(repo, t, r.backupId, trustOf(c));
    expect(m.artifacts.every((a) => a.compression === undefined && !a.file.includes('.zst'))).toBe(true);
  }

  // A backup without compression (like every one before compression existed) restores with a worker that compresses.
  const zstd = config({ algorithm: 'zstd', level: 3 });
  const h = await startHarness(zstd);
  try {
    const app = base.targets.get('app-pg')!.settings as { databases: string[] };
    const copy = `lifeboat_old_${randomBytes(3).toString('hex')}`;
    const restored = await h.run<RestoreResult>('restoreWorkflow', { backupId: r.backupId, targets: ['app-pg'], yes: true, only: { 'app-pg': [app.databases[0]!] }, into: { 'app-pg': { [app.databases[0]!]: copy } } });
    expect(restored.targets[0]!.restored).toEqual([{ name: app.databases[0], into: copy }]);
    expect(await countRows(base, copy, 'lifeboat_drill_markers')).toBeGreaterThan(0);
    await dropDatabase(base, copy);
  } finally {
    await h.stop();
  }
});

test('with zstd, every kind round-trips and the artifacts of streams that are not compressed already say so', async () => {
  const c = config({ algorithm: 'zstd', level: 3 });
  const r = await drill(c);
  expect(r.stores.map((s) => [s.target, s.markers.found === s.markers.expected])).toEqual(targets.map((t) => [t, true]));
  const repo = await openRepository(c);
  for (const t of targets) {
    const m = await readManifest(repo, t, r.backupId, trustOf(c));
    for (const a of m.artifacts) {
      if (m.kind === 'vault') expect(a.compression).toBeUndefined(); // a gzip'd snapshot is not compressed again
      else expect({ file: a.file, compression: a.compression }).toEqual({ file: expect.stringMatching(/\.zst\.age$/), compression: 'zstd' });
    }
  }

  // A damaged zstd frame, sealed and hashed as lifeboat would (only decoding can tell): verify names the
  // artifact as unreadable at once, without retrying what no retry can mend.
  const m = await readManifest(repo, 'app-pg', r.backupId, trustOf(c));
  const art = m.artifacts[0]!;
  const key = artifactKey('app-pg', r.backupId, art.file);
  const plain = Buffer.concat(await (await readArtifact(repo, key, art, await loadIdentities(c.encryption))).toArray());
  const frame = zstdCompressSync(plain, { params: { [constants.ZSTD_c_checksumFlag]: 1 } });
  frame[frame.length >> 1]! ^= 0xff;
  const stored = await storeArtifact(repo, key, Readable.from([frame]), c.encryption);
  await writeManifest(repo, { ...m, artifacts: [{ ...art, bytes: stored.bytes, sha256: stored.sha256 }, ...m.artifacts.slice(1)] }, await signingKeyOf(c));
  const h = await startHarness(c);
  try {
    const v = await h.run<VerifyResult>('verifyWorkflow', { backupId: r.backupId, targets: ['app-pg'] });
    expect(v.ok).toBe(false);
    expect(v.targets[0]!.artifacts[0]!.error).toMatchObject({ type: 'ArtifactUnreadable', message: expect.stringContaining('does not decompress') });
  } finally {
    await h.stop();
  }
});

test('a bucket compresses each object where it pays: text yes, random bytes and .gz files no; all come back byte for byte', async () => {
  const c = config({ algorithm: 'zstd', level: 3 });
  const repo = c.repository as S3RepositoryConfig;
  const bucket = uniqueBucket('zst');
  const admin = await adminClient(repo);
  await createBucket(admin, bucket);
  const text = Buffer.from('{"level":"info","msg":"request served","path":"/api/v1/items"}\n'.repeat(20_000));
  const noise = randomBytes(300_000);
  const objects: Record<string, Buffer> = { 'logs/app.jsonl': text, 'blob/random.bin': noise, 'archive/old.log.gz': text };
  for (const [Key, Body] of Object.entries(objects)) await admin.send(new PutObjectCommand({ Bucket: bucket, Key, Body }));
  const withBucket: Config = { ...c, targets: new Map([['files', bucketTarget(repo, 'files', bucket)]]) };
  const h = await startHarness(withBucket);
  try {
    const b = await h.run<{ backupId: string }>('backupWorkflow', { targets: ['files'] });
    const r = await openRepository(withBucket);
    const m = await readManifest(r, 'files', b.backupId, trustOf(withBucket));
    const index = await readIndex(await readArtifact(r, artifactKey('files', b.backupId, m.artifacts[0]!.file), m.artifacts[0]!, await loadIdentities(withBucket.encryption)));
    const how = Object.fromEntries(index.entries.map((e) => [e.key, e.compression ?? 'none']));
    expect(how).toEqual({ 'logs/app.jsonl': 'zstd', 'blob/random.bin': 'none', 'archive/old.log.gz': 'none' });
    expect(index.entries.find((e) => e.key === 'logs/app.jsonl')!.stored).toBeLessThan(text.length / 10);

    const copy = uniqueBucket('zstc');
    await h.run('restoreWorkflow', { backupId: b.backupId, targets: ['files'], yes: true, into: { files: { [bucket]: copy } } });
    for (const [Key, body] of Object.entries(objects)) {
      const got = Buffer.from(await (await admin.send(new GetObjectCommand({ Bucket: copy, Key }))).Body!.transformToByteArray());
      expect(got.equals(body)).toBe(true);
    }
    await removeBucket(admin, copy);
  } finally {
    await h.stop();
    await removeBucket(admin, bucket);
  }
});
