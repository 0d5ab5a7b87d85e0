import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseTargetSettings, type SecretRef, type TargetConfig } from '../../config';
import { parseDuration, path, secretRef, strict, text, wholeNumber, type SchemaContext } from '../../config/fields';

/** Where scratch drills start their temporary servers, and with what. */
export interface ScratchSettings {
  /** The `bao` (or `vault`) binary; undefined: the stack's cache, then `bao`, then `vault` on PATH. */
  binary?: string;
  /** Private folder (mode 700) holding each temporary server's raft folder, config and state file. */
  dir: string;
  /** How long a temporary server may take to start and answer. */
  startTimeoutSeconds: number;
  /** A temporary server older than this is left over from a drill that never cleaned up: the next one stops and deletes it. */
  maxAgeSeconds: number;
}

export interface VaultSettings {
  /** API address: `https://vault.internal:8200`, no credentials, no path. */
  address: string;
  /** Reads `sys/storage/raft/snapshot` (backups); also checks a restore finished. */
  token: SecretRef;
  /** Posts `sys/storage/raft/snapshot-force` (restores into the server); default: `token`. */
  restoreToken?: SecretRef;
  /** Writes, reads and deletes the drill markers under `<kvMount>/lifeboat-drill/`; default: `token`. */
  drillToken?: SecretRef;
  /** The unseal key shares of the snapshot's time: unseal a scratch server, and the server after a restore. */
  unsealKeys: SecretRef[];
  /** KV version 2 mount the drill writes its markers into. */
  kvMount: string;
  /** PEM file of the CA that signed the server's certificate (https). */
  caFile?: string;
  /** How long a restore waits for the server to be unsealed and active again. */
  activeTimeoutSeconds: number;
  scratch: ScratchSettings;
}

/** A URL without credentials, query, fragment or path: tokens travel in a header, never in a URL. */
const address = () =>
  text()
    .refine((v) => URL.canParse(v), 'is not a URL')
    .refine((v) => /^https?:$/.test(new URL(v).protocol), 'must start with http:// or https://')
    .refine((v) => !new URL(v).username && !new URL(v).password, 'must not contain credentials: use token with a { file } or { env } reference')
    .refine((v) => !new URL(v).search && !new URL(v).hash, 'must not have a query string or fragment')
    .refine((v) => ['/', ''].includes(new URL(v).pathname), 'must be scheme://host:port, without a path (lifeboat adds /v1/…)')
    .transform((v) => v.replace(/\/+$/, ''));

const duration = () =>
  z.union([text(), z.number()]).transform((v, ctx) => {
    const s = typeof v === 'number' ? v : parseDuration(v);
    if (s === undefined || s < 60) {
      ctx.addIssue({ code: 'custom', message: 'must be a duration of at least a minute, like "30m", "6h" or "1d"' });
      return z.NEVER;
    }
    return s;
  });

const mountPath = () =>
  text()
    .transform((v) => v.replace(/^\/+|\/+$/g, ''))
    .pipe(z.string().regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, "must be a mount path like 'secret' or 'team/kv' (letters, digits, '.', '_', '-', '/')"));

const scratchShape = (c: SchemaContext) =>
  strict({
    binary: path(c).optional().meta({ description: 'the bao or vault binary for temporary servers; default ~/.cache/lifeboat/bin/bao, then bao or vault on PATH' }),
    dir: path(c).optional().meta({ description: 'private folder for temporary servers (default: <tmp>/lifeboat-vault-<uid>)' }),
    startTimeoutSeconds: wholeNumber(5, 3600).default(120),
    maxAge: duration().default(6 * 3600).meta({ description: 'a temporary server older than this is stopped and deleted by the next drill of the target' }),
  });

/** A vault target's settings (docs/vault.md). */
export const vaultSettings = (c: SchemaContext) => ({
  address: address().default('http://127.0.0.1:8200').meta({ description: 'Vault/OpenBao API address: scheme://host:port' }),
  token: secretRef(c).meta({ description: 'token with the lifeboat-snapshot policy (reads sys/storage/raft/snapshot)' }),
  restoreToken: secretRef(c).optional().meta({ description: 'token with the lifeboat-restore policy (sys/storage/raft/snapshot-force); default: token' }),
  drillToken: secretRef(c).optional().meta({ description: 'token with the lifeboat-drill policy (markers under <kvMount>/lifeboat-drill/); default: token' }),
  unsealKeys: z.array(secretRef(c)).default([]).meta({ description: 'unseal key shares of the snapshot time, one secret each: scratch drills, and unsealing after a restore' }),
  kvMount: mountPath().default('secret').meta({ description: 'KV version 2 mount the drill writes its markers into' }),
  caFile: path(c).optional().meta({ description: 'PEM CA file for an https address' }),
  activeTimeoutSeconds: wholeNumber(5, 3600).default(120).meta({ description: 'how long a restore waits for the server to be unsealed and active again' }),
  scratch: scratchShape(c).prefault({}),
});

/** `bao` from the stack's cache, else `bao` or `vault` from PATH (undefined: none found; the error names what to install). */
export function scratchBinary(s: ScratchSettings): string | undefined {
  if (s.binary) return s.binary;
  const cached = join(process.env.LIFEBOAT_CACHE_DIR ?? join(homedir(), '.cache', 'lifeboat'), 'bin', 'bao');
  if (existsSync(cached)) return cached;
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    for (const name of ['bao', 'vault']) if (existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

export function parseVaultSettings(file: string, t: Pick<TargetConfig, 'name' | 'settings'>): VaultSettings {
  const s = parseTargetSettings(file, t, vaultSettings);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return {
    address: s.address,
    token: s.token,
    restoreToken: s.restoreToken,
    drillToken: s.drillToken,
    unsealKeys: s.unsealKeys,
    kvMount: s.kvMount,
    caFile: s.caFile,
    activeTimeoutSeconds: s.activeTimeoutSeconds,
    scratch: {
      binary: s.scratch.binary,
      dir: s.scratch.dir ?? join(tmpdir(), `lifeboat-vault-${uid}`),
      startTimeoutSeconds: s.scratch.startTimeoutSeconds,
      maxAgeSeconds: s.scratch.maxAge,
    },
  };
}
