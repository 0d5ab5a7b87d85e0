import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { CompressionConfig } from '../../domain/compression';
import type { EncryptionConfig, RepositoryConfig } from '../../config';
import { recipientFingerprint } from '../../crypto';
import { validateBackupId } from '../../domain/names';
import { LifeboatError } from '../../errors';
import type { Repository } from '../../repo/types';
import type { IndexEntry } from './object-index';
import { makeClient } from './s3';

/**
 * The object pool of a bucket target, in the repository:
 *
 *   <target>/objects/<pool key>             one object, as stored (age or plain)
 *   <target>/<backup id>/pool-refs.txt      the pool objects a backup uses
 *
 * A pool key is a hash of where the object came from and its ETag and size,
 * and of how it is sealed, so an unchanged object is found in the pool and not
 * copied again. Pool objects are never overwritten while a backup refers to
 * them: their stored SHA-256 is in that backup's index.
 *
 * pool-refs.txt lists, per pool object, the opaque pool key, the stored size,
 * the stored SHA-256 and the Content-Type: no names. A later backup reads it
 * to reuse objects without decrypting anything, and a prune can collect the
 * pool's garbage without keys (`poolGarbage`). It lives in the backup's folder
 * so deleting a backup deletes its references with it.
 */
export const POOL_DIR = 'objects';
export const REFS_FILE = 'pool-refs.txt';
/** A fifth field, the compression ('zstd'), was added later; older refs files have four and mean none. */
const REFS_HEADER = '# lifeboat bucket pool refs v1: pool-key stored-bytes stored-sha256 content-type [compression]';
const HEX64 = /^[0-9a-f]{64}$/;

/** What a store needs of the repository (StoreContext.repository, checked). */
export interface Scope {
  repo: Repository;
  dir: string;
  encryption: EncryptionConfig | null;
  /** The config's compression; objects streamed into the pool are compressed where it pays. */
  compression?: CompressionConfig;
  location?: RepositoryConfig;
  backupId?: string;
}

export interface Stored {
  stored: number;
  sha256: string;
  contentType?: string;
  /** The pool object holds the object zstd-compressed (then sealed): decided per object, where it pays. */
  compression?: 'zstd';
}

/** How pool objects are sealed: part of the pool key, so a change of recipients copies everything again. */
export function sealId(encryption: EncryptionConfig | null): string {
  return encryption ? `age:${encryption.recipients.map(recipientFingerprint).sort().join(',')}` : 'none';
}

export function poolKeyOf(source: string, bucket: string, key: string, etag: string, size: number, seal: string): string {
  return createHash('sha256').update(JSON.stringify(['bucket-pool-v1', source, bucket, key, etag, size, seal])).digest('hex');
}

export const poolPath = (dir: string, pool: string) => `${dir}/${POOL_DIR}/${pool}`;
export const refsPath = (dir: string, backupId: string) => `${dir}/${validateBackupId(backupId)}/${REFS_FILE}`;

export async function listPool(repo: Repository, dir: string): Promise<Set<string>> {
  return new Set((await repo.list(`${dir}/${POOL_DIR}`)).filter((e) => !e.dir && HEX64.test(e.name)).map((e) => e.name));
}

/** Backup ids with a folder under the target, newest first. */
async function backupFolders(repo: Repository, dir: string): Promise<string[]> {
  const ids: string[] = [];
  for (const e of await repo.list(dir)) {
    if (!e.dir) continue;
    try {
      ids.push(validateBackupId(e.name));
    } catch {
      // objects/, or not lifeboat's
    }
  }
  return ids.sort().reverse();
}

function parseRefs(text: string, each: (pool: string, s: Stored) => void): void {
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [pool, stored, sha256, ct, compression] = line.split(' ');
    if (!pool || !HEX64.test(pool) || !sha256 || !HEX64.test(sha256) || !Number.isSafeInteger(Number(stored))) continue;
    each(pool, { stored: Number(stored), sha256, ...(ct && ct !== '-' ? { contentType: decodeURIComponent(ct) } : {}), ...(compression === 'zstd' ? { compression } : {}) });
  }
}

/**
 * What the pool holds for the `wanted` keys, from the backups' refs, newest
 * backup first; stops as soon as every wanted key is known (usually after the
 * previous backup's). A pool object no refs file mentions was left by a
 * crashed attempt: no backup depends on it, so the caller may overwrite it.
 */
export async function readLedger(repo: Repository, dir: string, wanted: Set<string>): Promise<Map<string, Stored>> {
  const known = new Map<string, Stored>();
  if (wanted.size === 0) return known;
  for (const id of await backupFolders(repo, dir)) {
    const key = refsPath(dir, id);
    if (!(await repo.exists(key))) continue;
    parseRefs(await repo.getText(key), (pool, s) => {
      if (wanted.has(pool) && !known.has(pool)) known.set(pool, s);
    });
    if (known.size === wanted.size) break;
  }
  return known;
}

/** The pool objects one backup refers to, as it recorded them; empty when it has no refs file. */
export async function readRefs(repo: Repository, dir: string, backupId: string): Promise<Map<string, Stored>> {
  const out = new Map<string, Stored>();
  const key = refsPath(dir, backupId);
  if (await repo.exists(key)) parseRefs(await repo.getText(key), (pool, s) => out.set(pool, s));
  return out;
}

export async function writeRefs(repo: Repository, dir: string, backupId: string, entries: readonly IndexEntry[]): Promise<string> {
  const lines = new Map<string, string>();
  for (const e of entries) lines.set(e.pool, `${e.pool} ${e.stored} ${e.sha256} ${e.contentType ? encodeURIComponent(e.contentType) : '-'}${e.compression ? ` ${e.compression}` : ''}`);
  const key = refsPath(dir, backupId);
  await repo.putText(key, `${REFS_HEADER}\n${[...lines.keys()].sort().map((k) => lines.get(k)).join('\n')}\n`);
  return key;
}

/**
 * Pool objects that no backup folder refers to. Keyless: reads only
 * pool-refs.txt files. Run it only while no backup of the target is running:
 * a running backup's objects are not referenced until it finishes.
 */
export async function poolGarbage(repo: Repository, dir: string): Promise<string[]> {
  const live = new Set<string>();
  for (const id of await backupFolders(repo, dir)) {
    const key = refsPath(dir, id);
    if (await repo.exists(key)) parseRefs(await repo.getText(key), (pool) => live.add(pool));
  }
  return [...(await listPool(repo, dir))].filter((p) => !live.has(p)).map((p) => poolPath(dir, p));
}

/** The repository as S3, for server-side copies and Object Lock extensions. */
export interface RepoS3 {
  client: S3Client;
  bucket: string;
  endpoint?: string;
  region: string;
  /** The S3 key of a repository key. */
  key(repoKey: string): string;
  lock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

export async function repoS3(scope: Scope, sockets: number): Promise<RepoS3 | undefined> {
  const loc = scope.location;
  if (loc?.kind !== 's3') return undefined;
  const base = `s3://${loc.bucket}/`;
  const key = (k: string) => {
    const url = scope.repo.url(k);
    if (!url.startsWith(base)) throw new LifeboatError('ConfigError', `repository ${url} is not in bucket ${loc.bucket} of the config`);
    return url.slice(base.length);
  };
  key(''); // fail early if the location does not describe this repository
  return { client: await makeClient(loc, 'repository', sockets), bucket: loc.bucket, endpoint: loc.endpoint, region: loc.region, key, lock: loc.objectLock };
}
