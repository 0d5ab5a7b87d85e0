import { DRILLS_DIR, MANIFEST, drillRecordKey, manifestKey, verificationKey } from '../domain/layout';
import type { DrillRecord, TargetVerification } from '../domain/plan';
import { parseManifest, type Manifest } from '../domain/manifest';
import { backupIdTime, validateBackupId, validateName } from '../domain/names';
import { LifeboatError } from '../errors';
import type { Repository } from './types';

/** The manifest is the last thing a backup writes: its presence is what makes a backup valid. */
export async function writeManifest(repo: Repository, m: Manifest): Promise<void> {
  await repo.putText(manifestKey(m.target, m.backupId), `${JSON.stringify(m, null, 2)}\n`);
}

export async function readManifest(repo: Repository, target: string, backupId: string): Promise<Manifest> {
  const key = manifestKey(target, backupId);
  let text: string;
  try {
    text = await repo.getText(key);
  } catch (err) {
    if (err instanceof LifeboatError && err.type === 'ArtifactNotFound') {
      throw new LifeboatError(
        'BackupNotFound',
        `backup '${backupId}' of target '${target}' does not exist (no ${repo.url(key)}); run 'lifeboat ls' to see the backups`,
      );
    }
    throw err;
  }
  const m = parseManifest(text, repo.url(key));
  if (m.target !== target || m.backupId !== backupId) {
    throw new LifeboatError('ManifestInvalid', `manifest ${repo.url(key)} describes ${m.target}/${m.backupId}, not ${target}/${backupId}; it was moved or edited`);
  }
  return m;
}

export interface BackupListing {
  target: string;
  backupId: string;
}

/** Complete backups (those with a manifest) of the given targets, oldest first. */
export async function listBackups(repo: Repository, targets: string[]): Promise<BackupListing[]> {
  const out: BackupListing[] = [];
  for (const target of targets) {
    validateName('target', target);
    for (const dir of await repo.list(target)) {
      if (!dir.dir) continue;
      try {
        validateBackupId(dir.name);
      } catch {
        continue; // not lifeboat's
      }
      const files = await repo.list(`${target}/${dir.name}`);
      if (files.some((f) => f.name === MANIFEST && !f.dir)) out.push({ target, backupId: dir.name });
    }
  }
  return out.sort((a, b) => a.backupId.localeCompare(b.backupId) || a.target.localeCompare(b.target));
}

/** The stored result of the last `lifeboat verify` of a backup, if any. */
export async function readVerification(repo: Repository, target: string, backupId: string): Promise<TargetVerification | undefined> {
  const key = verificationKey(target, backupId);
  if (!(await repo.exists(key))) return undefined;
  return JSON.parse(await repo.getText(key)) as TargetVerification;
}

/** Backup folders without a manifest (interrupted backups) taken before `before`. */
export async function listIncomplete(repo: Repository, target: string, before: Date): Promise<string[]> {
  const out: string[] = [];
  for (const dir of await repo.list(validateName('target', target))) {
    if (!dir.dir) continue;
    try {
      validateBackupId(dir.name);
    } catch {
      continue; // not lifeboat's: never touched
    }
    if (backupIdTime(dir.name) >= before) continue; // may still be running
    const files = await repo.list(`${target}/${dir.name}`);
    if (!files.some((f) => f.name === MANIFEST && !f.dir)) out.push(dir.name);
  }
  return out;
}

/**
 * Deletes a whole backup, manifest first: a half-deleted backup is never
 * listed as valid. Refuses (deleting nothing) while an Object Lock retention
 * protects any of its files. Idempotent.
 */
export async function deleteBackup(repo: Repository, target: string, backupId: string): Promise<{ deleted: boolean; lockedUntil?: Date; files: number }> {
  const dir = `${validateName('target', target)}/${validateBackupId(backupId)}`;
  const files = (await repo.list(dir)).filter((f) => !f.dir).map((f) => `${dir}/${f.name}`);
  let lockedUntil: Date | undefined;
  for (const key of files) {
    const until = await repo.lockedUntil(key);
    if (until && (!lockedUntil || until > lockedUntil)) lockedUntil = until;
  }
  if (lockedUntil) return { deleted: false, lockedUntil, files: files.length };
  const manifest = manifestKey(target, backupId);
  if (files.includes(manifest)) await repo.delete([manifest]);
  await repo.delete(files.filter((k) => k !== manifest));
  return { deleted: true, files: files.length };
}

export async function writeDrillRecord(repo: Repository, record: DrillRecord): Promise<string> {
  const key = drillRecordKey(new Date(record.startedAt), record.nonce);
  await repo.putText(key, `${JSON.stringify(record, null, 2)}\n`);
  return key;
}

/** The newest `limit` drill records, newest first. */
export async function readDrillRecords(repo: Repository, limit: number): Promise<DrillRecord[]> {
  const names = (await repo.list(DRILLS_DIR))
    .filter((e) => !e.dir && e.name.endsWith('.json'))
    .map((e) => e.name)
    .sort()
    .reverse()
    .slice(0, limit);
  const out: DrillRecord[] = [];
  for (const n of names) out.push(JSON.parse(await repo.getText(`${DRILLS_DIR}/${n}`)) as DrillRecord);
  return out;
}
