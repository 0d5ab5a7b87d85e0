import { validateBackupId, validateName } from './names';

/**
 * Where things live in a repository: `<target>/<backup-id>/<file>` below the
 * repository's prefix. The manifest is written last, so a folder without one
 * is an interrupted backup and is never listed as valid.
 */
export const MANIFEST = 'manifest.json';
/** Written by `lifeboat verify` after the manifest; not part of the backup itself. */
export const VERIFICATION = 'verification.json';

export function backupDir(target: string, backupId: string): string {
  return `${validateName('target', target)}/${validateBackupId(backupId)}`;
}

export function artifactKey(target: string, backupId: string, file: string): string {
  return `${backupDir(target, backupId)}/${validateName('artifact file', file)}`;
}

export function manifestKey(target: string, backupId: string): string {
  return `${backupDir(target, backupId)}/${MANIFEST}`;
}

/** The manifest's Ed25519 signature, written just before the manifest. */
export const SIGNATURE = 'manifest.json.sig';

export function signatureKey(target: string, backupId: string): string {
  return `${backupDir(target, backupId)}/${SIGNATURE}`;
}

export function sidecarKey(key: string): string {
  return `${key}.sha256`;
}

/**
 * The SHA-256 of each block of an artifact's stored bytes, one hex digest per
 * line; the manifest records the block size and this list's own SHA-256.
 */
export function blocksKey(key: string): string {
  return `${key}.blocks`;
}

/** A `sha256sum`-format line, so `sha256sum -c` works on a downloaded backup. */
export function sidecarText(sha256: string, file: string): string {
  return `${sha256}  ${file}\n`;
}

export function verificationKey(target: string, backupId: string): string {
  return `${backupDir(target, backupId)}/${VERIFICATION}`;
}

/** Drill records live beside the targets' folders; no target may be called this. */
export const DRILLS_DIR = 'drills';

export function drillRecordKey(startedAt: Date, nonce: string): string {
  const stamp = startedAt.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return `${DRILLS_DIR}/${stamp}-${validateName('drill nonce', nonce.replace(/-/g, '').slice(0, 8))}.json`;
}
