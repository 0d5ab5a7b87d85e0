import type { KeyObject } from 'node:crypto';
import { checkSignature, signBytes } from '../crypto/sign';
import { DRILLS_DIR, MANIFEST, drillRecordKey, manifestKey, signatureKey, verificationKey } from '../domain/layout';
import type { DrillRecord, TargetVerification } from '../domain/plan';
import { parseManifest, type Manifest } from '../domain/manifest';
import { backupIdTime, validateBackupId, validateName } from '../domain/names';
import { LifeboatError } from '../errors';
import type { Repository } from './types';

/**
 * The manifest is the last thing a backup writes: its presence is what makes
 * a backup valid. Its signature (when a signing key is configured) goes first,
 * so a manifest is never visible without it.
 */
export async function writeManifest(repo: Repository, m: Manifest, signingKey?: KeyObject): Promise<void> {
  const text = `${JSON.stringify(m, null, 2)}\n`;
  if (signingKey) await repo.putText(signatureKey(m.target, m.backupId), `${JSON.stringify(signBytes(signingKey, Buffer.from(text)))}\n`);
  await repo.putText(manifestKey(m.target, m.backupId), text);
}

/** Which manifests restore and verify believe: those signed by a trusted key, or with `allowUnsigned` also unsigned ones. */
export interface Trust {
  publicKeys: readonly string[];
  allowUnsigned: boolean;
}

export type SignatureState = { state: 'signed'; key: string } | { state: 'unsigned' } | { state: 'unchecked'; key?: string } | { state: 'bad'; why: string };

/** A manifest as stored, with what its signature says; fails only when it does not parse. */
export async function loadManifest(repo: Repository, target: string, backupId: string, publicKeys: readonly string[]): Promise<{ manifest: Manifest; signature: SignatureState }> {
  const manifest = await readManifestText(repo, target, backupId);
  const sigKey = signatureKey(target, backupId);
  if (!(await repo.exists(sigKey))) return { manifest: manifest.parsed, signature: { state: 'unsigned' } };
  let sig: unknown;
  try {
    sig = JSON.parse(await repo.getText(sigKey));
  } catch {
    return { manifest: manifest.parsed, signature: { state: 'bad', why: `${repo.url(sigKey)} is not JSON` } };
  }
  // Without trusted keys nothing can be checked: the signature says nothing, good or bad.
  if (publicKeys.length === 0) return { manifest: manifest.parsed, signature: { state: 'unchecked', ...(typeof (sig as { key?: unknown })?.key === 'string' ? { key: (sig as { key: string }).key } : {}) } };
  const c = checkSignature(Buffer.from(manifest.text), sig, publicKeys);
  return { manifest: manifest.parsed, signature: c.ok ? { state: 'signed', key: c.key } : { state: 'bad', why: c.why } };
}

/**
 * The manifest of a backup, only if it is authentic: signed by a trusted key
 * (or, with `trust.allowUnsigned`, unsigned). A forged or unsigned manifest is
 * a permanent error that says what to do.
 */
export async function readManifest(repo: Repository, target: string, backupId: string, trust: Trust): Promise<Manifest> {
  const { manifest, signature } = await loadManifest(repo, target, backupId, trust.publicKeys);
  const where = repo.url(manifestKey(target, backupId));
  if (signature.state === 'bad') {
    throw new LifeboatError('SignatureInvalid', `manifest ${where} is not authentic: ${signature.why}. Someone who can write to the repository may have replaced it; it was not used. Restore another backup (lifeboat ls)`);
  }
  if ((signature.state === 'unsigned' || signature.state === 'unchecked') && !trust.allowUnsigned) {
    throw new LifeboatError(
      'ManifestUnsigned',
      trust.publicKeys.length
        ? `manifest ${where} is not signed: it may have been written by anyone who can write to the repository. If it is a backup from before signing was configured and you trust it, pass --allow-unsigned`
        : `manifest ${where} cannot be checked: the config has no signing.publicKeys, so lifeboat cannot tell an authentic backup from a forged one. Configure signing (lifeboat keygen --signing; docs/encryption.md), or pass --allow-unsigned to restore unsigned backups`,
    );
  }
  return manifest;
}

async function readManifestText(repo: Repository, target: string, backupId: string): Promise<{ text: string; parsed: Manifest }> {
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
  return { text, parsed: m };
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
  // Manifest first (then its signature): a half-deleted backup is never listed as valid.
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
