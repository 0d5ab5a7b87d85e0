import { getMaxListeners, setMaxListeners } from 'node:events';
import { LifeboatError } from '../../errors';
import type { StoreContext } from '../types';
import { VaultError, type VaultHttp } from './http';

/** The folder of the drill's markers in the KV mount. */
export const MARKER_FOLDER = 'lifeboat-drill';
/** Markers of earlier drills older than this are removed when a new drill seeds its own. */
const OLD_MARKERS_MS = 24 * 3600 * 1000;
const PARALLEL = 8;

/** At most PARALLEL calls at once; after the first failure nothing new starts, and it is thrown once the others are done. */
async function forEach<T>(items: T[], signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<void> {
  // Each call in flight listens to the signal: make room, or Node warns of a leak.
  if (getMaxListeners(signal) < PARALLEL + 16) setMaxListeners(PARALLEL + 16, signal);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const run = async () => {
    while (!failure && next < items.length) {
      try {
        signal.throwIfAborted();
        await fn(items[next++]!);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, run));
  if (failure) throw failure.err;
}

function checkNonce(nonce: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(nonce)) throw new LifeboatError('InvalidName', `drill nonce ${JSON.stringify(nonce)} is not letters, digits and '-'`);
  return nonce;
}

/**
 * Drill markers as KV version 2 secrets: `<mount>/data/lifeboat-drill/<nonce>/<seq>`,
 * each holding the nonce and its number. Only this folder is ever written or
 * deleted.
 */
export class KvMarkers {
  constructor(
    private readonly h: VaultHttp,
    private readonly mount: string,
    private readonly token: string,
    private readonly tokenSetting: string,
  ) {}

  private call(method: 'GET' | 'POST' | 'DELETE', path: string, what: string, signal: AbortSignal, extra: { json?: unknown; list?: boolean } = {}) {
    return this.h.json<{ data?: { keys?: string[]; data?: Record<string, unknown>; created_time?: string; version?: number } }>({
      method,
      path: `${this.mount}/${path}`,
      token: this.token,
      tokenSetting: this.tokenSetting,
      what,
      signal,
      accept: [404],
      ...(extra.json !== undefined ? { json: extra.json } : {}),
      ...(extra.list ? { query: { list: 'true' } } : {}),
    });
  }

  /** The entries of a folder of the mount; none when it does not exist. */
  private async list(folder: string, signal: AbortSignal): Promise<string[]> {
    const r = await this.call('GET', `metadata/${folder}/`, `listing ${this.mount}/${folder}/`, signal, { list: true });
    return r.status === 404 ? [] : (r.body?.data?.keys ?? []);
  }

  /** Writes markers 1..count; writing one again adds an identical version. Idempotent. */
  async seed(ctx: StoreContext, count: number, nonce: string): Promise<void> {
    const folder = `${MARKER_FOLDER}/${checkNonce(nonce)}`;
    const what = `writing drill markers under ${this.mount}/${folder}/`;
    await this.pruneOld(ctx, nonce);
    await forEach(
      Array.from({ length: count }, (_, i) => i + 1),
      ctx.signal,
      async (seq) => {
        const r = await this.call('POST', `data/${folder}/${seq}`, what, ctx.signal, { json: { data: { lifeboat: 'drill-marker', nonce, seq } } });
        // KV v2 answers a write with the new version; v1 (or no mount) does not.
        if (r.status === 404 || r.body?.data?.version === undefined) throw notKv2(this.h, this.mount);
      },
    );
  }

  /** The sequence numbers of the markers whose value holds `nonce`. Read-only. */
  async count(ctx: StoreContext, nonce: string): Promise<number[]> {
    const folder = `${MARKER_FOLDER}/${checkNonce(nonce)}`;
    const found: number[] = [];
    const keys = (await this.list(folder, ctx.signal)).filter((k) => /^\d+$/.test(k));
    await forEach(keys, ctx.signal, async (key) => {
      const r = await this.call('GET', `data/${folder}/${key}`, `reading drill marker ${this.mount}/${folder}/${key}`, ctx.signal);
      const v = r.body?.data?.data;
      if (v && v.nonce === nonce && v.seq === Number(key)) found.push(Number(key));
    });
    return found.sort((a, b) => a - b);
  }

  /** Deletes every version of the markers of `nonce`, or of every drill when none is given. Idempotent. */
  async remove(ctx: StoreContext, nonce?: string): Promise<number> {
    const nonces = nonce !== undefined ? [checkNonce(nonce)] : (await this.list(MARKER_FOLDER, ctx.signal)).filter((k) => k.endsWith('/')).map((k) => k.slice(0, -1));
    let n = 0;
    for (const nn of nonces) {
      const folder = `${MARKER_FOLDER}/${nn}`;
      const keys = (await this.list(folder, ctx.signal)).filter((k) => !k.endsWith('/'));
      await forEach(keys, ctx.signal, async (key) => {
        await this.call('DELETE', `metadata/${folder}/${key}`, `deleting drill marker ${this.mount}/${folder}/${key}`, ctx.signal);
        n++;
      });
    }
    return n;
  }

  /** Markers of earlier drills stay until a drill a day later removes them (the server keeps no garbage of lifeboat's). */
  private async pruneOld(ctx: StoreContext, keep: string): Promise<void> {
    const folders = (await this.list(MARKER_FOLDER, ctx.signal)).filter((k) => k.endsWith('/') && k !== `${keep}/`).map((k) => k.slice(0, -1));
    for (const nn of folders) {
      if (!/^[A-Za-z0-9-]{1,64}$/.test(nn)) continue;
      const first = (await this.list(`${MARKER_FOLDER}/${nn}`, ctx.signal))[0];
      const meta = first ? await this.call('GET', `metadata/${MARKER_FOLDER}/${nn}/${first}`, 'reading an old drill marker', ctx.signal) : undefined;
      const created = Date.parse(meta?.body?.data?.created_time ?? '');
      if (!first || (Number.isFinite(created) && Date.now() - created > OLD_MARKERS_MS)) await this.remove(ctx, nn);
    }
  }
}

function notKv2(h: VaultHttp, mount: string): VaultError {
  return new VaultError('NotFound', `${h.where()}: ${mount}/ is not a KV version 2 mount (a write to ${mount}/data/… did not answer with a version); set targets.${h.ep.target}.kvMount to one, or enable it: bao secrets enable -path=${mount} kv-v2`, 404, true);
}
