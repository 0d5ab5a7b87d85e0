import { LifeboatError } from '../errors';
import { validateBackupId, validateName } from './names';

export const MANIFEST_SCHEMA = 1;

/** One stored file of a backup, as stored: encrypted bytes, their size and SHA-256. */
export interface ArtifactRecord {
  /** File name inside the backup folder, e.g. `app.dump.age`. */
  file: string;
  /** What it holds, e.g. `database:app`. */
  item: string;
  /** The item's name in the store, e.g. `app`. */
  name: string;
  /** Format of the plaintext, e.g. `pg_dump-custom`. */
  format: string;
  encryption: 'age' | 'none';
  /** How the plaintext was compressed before encryption (absent: not at all, as in backups before compression). */
  compression?: 'zstd';
  bytes: number;
  sha256: string;
  /**
   * The stored bytes in blocks of `size`, each block's SHA-256 listed in the
   * object beside the artifact (layout `blocksKey`), whose own SHA-256 this is:
   * a restore into a new name authenticates each block as it streams instead
   * of reading the artifact twice. Absent in backups made before it.
   */
  blocks?: { size: number; sha256: string };
  seconds: number;
  /** Bytes of the plaintext the store produced (before compression and encryption), when known. */
  plaintextBytes?: number;
  /** The store's own facts about the item, e.g. the extensions a dump needs. */
  meta?: Record<string, unknown>;
}

export interface Manifest {
  schema: typeof MANIFEST_SCHEMA;
  backupId: string;
  target: string;
  kind: string;
  server: { version: string };
  tools: Record<string, string>;
  lifeboatVersion: string;
  startedAt: string;
  finishedAt: string;
  /** Fingerprints of the age recipients, never the keys themselves. */
  encryption: { format: 'age' | 'none'; recipients: string[] };
  artifacts: ArtifactRecord[];
}

const SHA256 = /^[0-9a-f]{64}$/;

/** The largest block a restore holds back (lifeboat writes 4 MiB). */
const MAX_BLOCK = 64 << 20;

function validBlocks(b: Record<string, unknown>): boolean {
  return Number.isSafeInteger(b.size) && (b.size as number) > 0 && (b.size as number) <= MAX_BLOCK && typeof b.sha256 === 'string' && SHA256.test(b.sha256);
}

function fail(where: string, why: string): never {
  throw new LifeboatError('ManifestInvalid', `manifest ${where} is not valid: ${why}`);
}

/** Parses and checks a stored manifest; `where` names it in errors. */
export function parseManifest(text: string, where: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(where, `it is not JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null) fail(where, 'it is not a JSON object');
  const m = raw as Record<string, unknown>;
  if (m.schema !== MANIFEST_SCHEMA) {
    fail(where, `schema version ${JSON.stringify(m.schema)} is not one this lifeboat reads (it reads ${MANIFEST_SCHEMA}); upgrade lifeboat to read it`);
  }
  for (const field of ['backupId', 'target', 'kind', 'startedAt', 'finishedAt', 'lifeboatVersion'] as const) {
    if (typeof m[field] !== 'string') fail(where, `field '${field}' is missing`);
  }
  validateBackupId(m.backupId);
  validateName('target', m.target);
  if (!Array.isArray(m.artifacts)) fail(where, "field 'artifacts' is missing");
  for (const [i, a] of (m.artifacts as unknown[]).entries()) {
    const art = a as Partial<ArtifactRecord>;
    if (typeof art.file !== 'string') fail(where, `artifact ${i} has no file name`);
    validateName('artifact file', art.file);
    if (typeof art.item !== 'string' || typeof art.name !== 'string') fail(where, `artifact '${art.file}' does not say what it holds`);
    if (typeof art.sha256 !== 'string' || !SHA256.test(art.sha256)) fail(where, `artifact '${art.file}' has no valid sha256`);
    if (typeof art.bytes !== 'number' || art.bytes < 0) fail(where, `artifact '${art.file}' has no valid size`);
    if (art.encryption !== 'age' && art.encryption !== 'none') fail(where, `artifact '${art.file}' has unknown encryption`);
    const b = art.blocks as unknown;
    if (b !== undefined && !(typeof b === 'object' && b !== null && validBlocks(b as Record<string, unknown>))) {
      fail(where, `artifact '${art.file}' has an invalid block list`);
    }
    if (art.compression !== undefined && art.compression !== 'zstd') fail(where, `artifact '${art.file}' has compression '${String(art.compression)}', which this lifeboat cannot read; upgrade lifeboat`);
  }
  return m as unknown as Manifest;
}

export function manifestBytes(m: Manifest): number {
  return m.artifacts.reduce((sum, a) => sum + a.bytes, 0);
}
