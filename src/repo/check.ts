import { createHash } from 'node:crypto';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DRILLS_DIR, MANIFEST, artifactKey, blocksKey, sidecarKey, sidecarText } from '../domain/layout';
import { validateBackupId, validateName } from '../domain/names';
import { messageOf } from '../errors';
import { readBlockList } from './artifacts';
import { BlockHasher } from './blocks';
import { HashTap } from './hash-tap';
import { loadManifest } from './catalog';
import type { Entry, Repository } from './types';

/**
 * `lifeboat check`: the repository as a whole, without any key (like `restic
 * check`). Every manifest parses; every artifact it names is there with the
 * recorded size, its `.sha256` sidecar agrees with the manifest and its
 * `.blocks` list (when recorded) with the list's signed SHA-256; objects a
 * backup refers to outside its folder (a bucket target's pool) are there with
 * their recorded size. With `readData`, every stored byte is read and hashed
 * again against the recorded SHA-256. Read-only.
 */

/** An object a backup depends on beyond its own artifacts, as the backup recorded it. */
export interface ReferencedObject {
  key: string;
  bytes: number;
  sha256: string;
  /** Its size as a listing already said (saves a request per object). */
  listed?: number;
}

/** Finds what a backup refers to outside its folder (e.g. a bucket target's pool-refs.txt). */
export type References = (repo: Repository, target: string, backupId: string, files: Entry[]) => Promise<ReferencedObject[]>;

export interface BackupCheck {
  target: string;
  backupId: string;
  /** false: a folder without a manifest (an interrupted or running backup), not a problem. */
  complete: boolean;
  artifacts: number;
  referenced: number;
  bytes: number;
  problems: string[];
}

export interface CheckResult {
  backups: BackupCheck[];
  /** Problems outside any backup (drill records). */
  problems: string[];
  /** Bytes read and hashed again (readData). */
  bytesRead: number;
}

export interface CheckOptions {
  readData?: boolean;
  /** The config's signing keys: a manifest signature that does not hold is a problem. */
  publicKeys?: readonly string[];
  references?: References;
  /** Called after each backup is checked, for progress lines. */
  onBackup?: (b: BackupCheck) => void;
}

/**
 * SHA-256 of a stored object; with `blockSize` (an artifact's), also the
 * SHA-256 of its block list as a backup writes it, which the manifest signs.
 */
async function hashOf(repo: Repository, key: string, blockSize?: number): Promise<{ sha256: string; bytes: number; blocksSha256?: string }> {
  const tap = new HashTap();
  const blocks = blockSize ? new BlockHasher(blockSize) : new PassThrough();
  const discard = new Writable({ write: (_chunk, _enc, done) => done() });
  await pipeline(await repo.get(key), tap, blocks, discard);
  return { sha256: tap.digest(), bytes: tap.bytes, ...(blocks instanceof BlockHasher ? { blocksSha256: createHash('sha256').update(blocks.list()).digest('hex') } : {}) };
}

const isName = (s: string) => {
  try {
    validateName('target', s);
    return true;
  } catch {
    return false;
  }
};

const isBackupId = (s: string) => {
  try {
    validateBackupId(s);
    return true;
  } catch {
    return false;
  }
};

export async function checkRepository(repo: Repository, opts: CheckOptions = {}): Promise<CheckResult> {
  const result: CheckResult = { backups: [], problems: [], bytesRead: 0 };
  // Objects several backups share (pool objects) are read once.
  const sizes = new Map<string, Promise<number | undefined>>();
  const hashes = new Map<string, ReturnType<typeof hashOf>>();
  const sizeOf = (key: string, listed?: number) => {
    if (listed !== undefined) return Promise.resolve(listed);
    if (!sizes.has(key)) sizes.set(key, repo.size(key));
    return sizes.get(key)!;
  };
  const rehash = (key: string, blockSize?: number) => {
    if (!hashes.has(key)) {
      hashes.set(
        key,
        hashOf(repo, key, blockSize).then((h) => {
          result.bytesRead += h.bytes;
          return h;
        }),
      );
    }
    return hashes.get(key)!;
  };

  /** Size (and with readData the SHA-256) of one stored object against what was recorded; `blockSize`: an artifact's, read along. */
  async function object(key: string, bytes: number, sha256: string, listed: number | undefined, problems: string[], blockSize?: number): Promise<boolean> {
    const size = await sizeOf(key, listed);
    if (size === undefined) {
      problems.push(`${repo.url(key)} is missing`);
      return false;
    }
    if (size !== bytes) {
      problems.push(`${repo.url(key)} is ${size} bytes, the backup recorded ${bytes}`);
      return false;
    }
    if (opts.readData) {
      const got = (await rehash(key, blockSize)).sha256;
      if (got !== sha256) {
        problems.push(`${repo.url(key)} failed its checksum (recorded ${sha256}, read ${got})`);
        return false;
      }
    }
    return true;
  }

  for (const top of await repo.list('')) {
    if (!top.dir || top.name === DRILLS_DIR || !isName(top.name)) continue;
    const target = top.name;
    for (const folder of await repo.list(target)) {
      if (!folder.dir || !isBackupId(folder.name)) continue;
      const backupId = folder.name;
      const files = await repo.list(`${target}/${backupId}`);
      const listed = new Map(files.filter((f) => !f.dir).map((f) => [f.name, f.bytes]));
      const b: BackupCheck = { target, backupId, complete: listed.has(MANIFEST), artifacts: 0, referenced: 0, bytes: 0, problems: [] };
      if (b.complete) {
        try {
          const { manifest: m, signature } = await loadManifest(repo, target, backupId, opts.publicKeys ?? []);
          if (signature.state === 'bad') b.problems.push(`manifest signature does not hold: ${signature.why}`);
          for (const a of m.artifacts) {
            b.artifacts++;
            b.bytes += a.bytes;
            const key = artifactKey(target, backupId, a.file);
            await object(key, a.bytes, a.sha256, listed.get(a.file), b.problems, a.blocks?.size);
            const side = sidecarKey(key);
            if (!listed.has(`${a.file}.sha256`)) b.problems.push(`${repo.url(side)} is missing`);
            else if ((await repo.getText(side)) !== sidecarText(a.sha256, a.file)) b.problems.push(`${repo.url(side)} does not agree with the manifest (sha256 ${a.sha256})`);
            if (a.blocks) {
              // Without it a restore into a new name verifies the whole artifact first instead: slower, still safe.
              if (!listed.has(`${a.file}.blocks`)) b.problems.push(`${repo.url(blocksKey(key))} is missing`);
              else {
                const list = await readBlockList(repo, key, a).catch((err: unknown) => void b.problems.push(messageOf(err)));
                // With readData: the list (as signed) also matches the bytes, or every restore into a new name would fail.
                if (list && opts.readData && (await rehash(key, a.blocks.size)).blocksSha256 !== a.blocks.sha256) {
                  b.problems.push(`${repo.url(blocksKey(key))} does not match the artifact's bytes: a restore into a new name fails on it (one in place verifies the whole artifact instead)`);
                }
              }
            }
          }
          for (const r of (await opts.references?.(repo, target, backupId, files)) ?? []) {
            b.referenced++;
            await object(r.key, r.bytes, r.sha256, r.listed, b.problems);
          }
        } catch (err) {
          b.problems.push(messageOf(err));
        }
      }
      result.backups.push(b);
      opts.onBackup?.(b);
    }
  }

  for (const e of await repo.list(DRILLS_DIR)) {
    if (e.dir || !e.name.endsWith('.json')) continue;
    try {
      const r = JSON.parse(await repo.getText(`${DRILLS_DIR}/${e.name}`)) as { workflowId?: unknown; stores?: unknown };
      if (typeof r.workflowId !== 'string' || !Array.isArray(r.stores)) throw new Error('it is not a drill record');
    } catch (err) {
      result.problems.push(`drill record ${repo.url(`${DRILLS_DIR}/${e.name}`)} does not read: ${messageOf(err)}`);
    }
  }
  return result;
}
