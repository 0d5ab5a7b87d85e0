import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError } from '../../errors';
import { VaultError, type VaultHttp } from './http';
import { checkedStream, verifySnapshot, type SnapshotFacts } from './snapshot';

/** What `sys/health` says (asked so that every state answers 200). */
export interface Health {
  initialized: boolean;
  sealed: boolean;
  standby: boolean;
  version: string;
  cluster_id?: string;
}

export interface SealStatus {
  type: string;
  sealed: boolean;
  t: number;
  n: number;
  progress: number;
  storage_type?: string;
}

const EVERY_STATE = { standbyok: 'true', perfstandbyok: 'true', sealedcode: '200', uninitcode: '200', drsecondarycode: '200', performancestandbycode: '200' };

export async function health(h: VaultHttp, signal: AbortSignal): Promise<Health> {
  const r = await h.json<Health>({ method: 'GET', path: 'sys/health', query: EVERY_STATE, what: 'reading sys/health', signal });
  if (!r.body) throw new LifeboatError('VaultError', `${h.where()}: sys/health answered nothing`, false);
  return r.body;
}

/** Whether the server is unsealed and active (HTTP 200 on a plain sys/health). */
async function active(h: VaultHttp, signal: AbortSignal): Promise<boolean> {
  const r = await h.json({ method: 'GET', path: 'sys/health', what: 'reading sys/health', signal, accept: [429, 472, 473, 500, 501, 503] }).catch(() => ({ status: 0 }));
  return r.status === 200;
}

export async function sealStatus(h: VaultHttp, signal: AbortSignal): Promise<SealStatus> {
  const r = await h.json<SealStatus>({ method: 'GET', path: 'sys/seal-status', what: 'reading sys/seal-status', signal });
  if (!r.body) throw new LifeboatError('VaultError', `${h.where()}: sys/seal-status answered nothing`, false);
  return r.body;
}

/** Initialises a new server with one key share; its root token and key stay in memory. */
export async function initialise(h: VaultHttp, signal: AbortSignal): Promise<{ rootToken: string; key: string }> {
  const r = await h.json<{ keys_base64?: string[]; root_token?: string }>({ method: 'PUT', path: 'sys/init', json: { secret_shares: 1, secret_threshold: 1 }, what: 'initialising the temporary server', signal });
  const key = r.body?.keys_base64?.[0];
  if (!key || !r.body?.root_token) throw new LifeboatError('VaultError', `${h.where()}: sys/init answered without a key or root token`, false);
  return { rootToken: r.body.root_token, key };
}

/**
 * Unseals with `keys` (each in a request body, never in a URL or argv),
 * starting from a reset so a half-finished earlier attempt does not count.
 * Refused or too few keys are permanent: the keys of the snapshot's time are needed.
 */
export async function unseal(h: VaultHttp, keys: string[], setting: string, signal: AbortSignal): Promise<void> {
  if (keys.length === 0) {
    throw new LifeboatError('UnsealKeysMissing', `${h.where()} is sealed and ${setting} lists no key; unseal it by hand (bao operator unseal) with the keys of the snapshot's time, or configure them`, true);
  }
  await h.json({ method: 'PUT', path: 'sys/unseal', json: { reset: true }, what: 'resetting the unseal progress', signal });
  let status: SealStatus | undefined;
  for (const [i, key] of keys.entries()) {
    try {
      status = (await h.json<SealStatus>({ method: 'PUT', path: 'sys/unseal', json: { key }, what: `unsealing with ${setting}[${i}]`, signal })).body;
    } catch (err) {
      if (err instanceof VaultError && err.status === 400) {
        throw new LifeboatError('UnsealFailed', `${err.message}; ${setting}[${i}] is not a key share of this server's keyring: a restored server needs the unseal keys of the snapshot's time`, true);
      }
      throw err;
    }
    if (status && !status.sealed) return;
  }
  throw new LifeboatError('UnsealFailed', `${h.where()} is still sealed after the ${keys.length} key(s) of ${setting}: it needs ${status?.t ?? '?'} of ${status?.n ?? '?'} key shares of the snapshot's time`, true);
}

/** Waits until the server is unsealed and active. */
export async function waitActive(h: VaultHttp, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await active(h, signal))) {
    signal.throwIfAborted();
    if (Date.now() > deadline) throw new LifeboatError('VaultNotActive', `${h.where()} did not become active within ${timeoutMs / 1000}s`, false);
    await sleep(250);
  }
}

/**
 * Streams a snapshot into `sys/storage/raft/snapshot-force`, checking it on
 * the way: its last bytes reach the server only once SHA256SUMS and meta.json
 * held, so a damaged snapshot is refused before the server could apply it.
 */
export async function forceRestore(h: VaultHttp, o: { token: string; tokenSetting: string; source: Readable; label: string; signal: AbortSignal }): Promise<SnapshotFacts> {
  const { stream, result } = checkedStream(o.source, (copy) => verifySnapshot(copy, o.label));
  result.catch(() => undefined);
  await h.json({ method: 'POST', path: 'sys/storage/raft/snapshot-force', token: o.token, tokenSetting: o.tokenSetting, body: stream, what: `restoring ${o.label} (snapshot-force)`, signal: o.signal });
  return result;
}

/**
 * After snapshot-force: a snapshot of another keyring (another cluster, or a
 * scratch server) makes the server seal itself once it notices; one of its
 * own keyring leaves it running. Either way, wait until it is unsealed
 * (with `keys` when it sealed, or by its auto-unseal), active, and `token`,
 * which existed when the snapshot was taken, is accepted again.
 */
export async function settleAfterRestore(h: VaultHttp, o: { keys: () => Promise<string[]>; keySetting: string; token: string; tokenSetting: string; timeoutMs: number; signal: AbortSignal }): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  let refused: VaultError | undefined;
  for (;;) {
    o.signal.throwIfAborted();
    const seal = await sealStatus(h, o.signal).catch(() => undefined);
    if (seal?.sealed && seal.type === 'shamir') {
      await unseal(h, await o.keys(), o.keySetting, o.signal);
      continue;
    }
    if (seal && !seal.sealed && (await active(h, o.signal))) {
      try {
        await h.json({ method: 'GET', path: 'auth/token/lookup-self', token: o.token, tokenSetting: o.tokenSetting, what: 'checking the restored server', signal: o.signal });
        return;
      } catch (err) {
        if (!(err instanceof VaultError)) throw err;
        if (err.status === 403) refused = err;
      }
    }
    if (Date.now() > deadline) {
      if (refused) {
        throw new LifeboatError('RestoredTokenRefused', `the snapshot was restored and ${h.where()} is active, but it refuses targets.${h.ep.target}.${o.tokenSetting}: the token was created after the snapshot or has expired since. The restored server is otherwise usable`, true);
      }
      throw new LifeboatError('VaultNotActive', `the snapshot was restored, but ${h.where()} did not become unsealed and active within ${o.timeoutMs / 1000}s; check its log`, false);
    }
    await sleep(250);
  }
}
