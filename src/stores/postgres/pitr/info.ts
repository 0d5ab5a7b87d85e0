import type { PitrBackup, PitrBackupType } from '../../../domain/pitr';
import { LifeboatError } from '../../../errors';

/** One stanza of `pgbackrest info --output=json`, as far as lifeboat reads it. */
interface RawStanza {
  name: string;
  status?: { code: number; message: string; lock?: { backup?: { held?: boolean } } };
  db?: Array<{ version: string }>;
  archive?: Array<{ id: string; min: string | null; max: string | null }>;
  backup?: Array<{
    label: string;
    type: string;
    prior: string | null;
    error?: boolean;
    annotation?: Record<string, string>;
    archive?: { start: string | null; stop: string | null };
    info?: { size: number; repository?: { delta?: number; size?: number } };
    timestamp: { start: number; stop: number };
  }>;
}

export interface StanzaInfo {
  /** pgBackRest's status: 0 ok, 1 missing stanza path, 2 no valid backups, … */
  statusCode: number;
  statusMessage: string;
  backupLockHeld: boolean;
  serverVersion?: string;
  backups: PitrBackup[];
  archive: { id: string; min: string; max: string } | null;
}

const iso = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString();

/** Reads the one stanza of `pgbackrest --stanza=<target> info --output=json`. */
export function parseInfo(json: string, stanza: string): StanzaInfo {
  let doc: RawStanza[];
  try {
    doc = JSON.parse(json) as RawStanza[];
  } catch {
    throw new LifeboatError('ToolFailed', `pgbackrest info for stanza '${stanza}' did not print JSON: ${json.slice(0, 300)}`, false);
  }
  const s = doc.find((x) => x.name === stanza);
  if (!s) return { statusCode: 1, statusMessage: 'missing stanza', backupLockHeld: false, backups: [], archive: null };
  const backups: PitrBackup[] = (s.backup ?? []).map((b) => ({
    label: b.label,
    type: b.type as PitrBackupType,
    startedAt: iso(b.timestamp.start),
    stoppedAt: iso(b.timestamp.stop),
    databaseBytes: b.info?.size ?? 0,
    repositoryBytes: b.info?.repository?.delta ?? b.info?.repository?.size ?? 0,
    prior: b.prior ?? null,
    walStart: b.archive?.start ?? '',
    walStop: b.archive?.stop ?? '',
    error: b.error === true,
    annotations: b.annotation ?? {},
  }));
  // The archive of the current database (the last one): a pg_upgrade starts a new id.
  const a = (s.archive ?? []).filter((x) => x.min && x.max).at(-1);
  return {
    statusCode: s.status?.code ?? 0,
    statusMessage: s.status?.message ?? 'ok',
    backupLockHeld: s.status?.lock?.backup?.held === true,
    serverVersion: s.db?.at(-1)?.version,
    backups,
    archive: a ? { id: a.id, min: a.min!, max: a.max! } : null,
  };
}
