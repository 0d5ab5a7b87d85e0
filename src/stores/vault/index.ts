import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { resolveSecret, type SecretRef, type TargetConfig } from '../../config';
import { LifeboatError } from '../../errors';
import { toolText } from '../child';
import type { BackupItem, MarkerCount, ProbeResult, Store, StoreContext } from '../types';
import { VaultHttp } from './http';
import { forceRestore, health, sealStatus, settleAfterRestore, unseal, waitActive } from './lifecycle';
import { KvMarkers } from './markers';
import { restoreScratch } from './restore-scratch';
import { SCRATCH_PREFIX, ScratchRegistry } from './scratch';
import { parseVaultSettings, scratchBinary, type VaultSettings } from './settings';
import { checkedStream, describeSnapshot, SNAPSHOT_FORMAT, verifySnapshot } from './snapshot';
import { serverPids } from './server';

/** The one item of a vault target, and the name that means "the target's own server". */
export const SNAPSHOT = 'snapshot';
/** A token this close to its end is renewed by the probe (when it is renewable). */
const RENEW_BELOW_SECONDS = 7 * 24 * 3600;

type TokenSetting = 'token' | 'restoreToken' | 'drillToken';

/**
 * A Vault or OpenBao server on integrated (raft) storage (docs/vault.md). A
 * backup is one raft snapshot, streamed from `sys/storage/raft/snapshot` into
 * the artifact pipeline and checked on the way. A restore into the target's
 * own name (`snapshot`) replaces the whole server with `snapshot-force`; a
 * restore under a scratch name (`lifeboat-drill-<hex>`) starts a temporary
 * single-node server on this host and restores into that.
 */
export class VaultStore implements Store {
  readonly kind = 'vault';
  readonly target: string;
  private readonly s: VaultSettings;
  private caCache?: Promise<Buffer | undefined>;

  constructor(configFile: string, t: TargetConfig) {
    this.target = t.name;
    this.s = parseVaultSettings(configFile, t);
  }

  async http(address = this.s.address): Promise<VaultHttp> {
    this.caCache ??= this.s.caFile
      ? readFile(this.s.caFile).catch((err: NodeJS.ErrnoException) => {
          this.caCache = undefined;
          throw new LifeboatError('ConfigError', `targets.${this.target}.caFile: cannot read ${this.s.caFile} (${err.code ?? err.message})`);
        })
      : Promise.resolve(undefined);
    return new VaultHttp({ address, ca: await this.caCache, target: this.target });
  }

  private async secret(ref: SecretRef, setting: string): Promise<string> {
    return resolveSecret(ref, `targets.${this.target}.${setting}`);
  }

  /** A token and the setting it came from (falling back to `token`), for messages. */
  private async tokenFor(which: TokenSetting): Promise<{ token: string; tokenSetting: string }> {
    const ref = this.s[which] ?? this.s.token;
    const tokenSetting = this.s[which] ? which : 'token';
    return { token: await this.secret(ref, tokenSetting), tokenSetting };
  }

  private unsealKeys = async (): Promise<string[]> => Promise.all(this.s.unsealKeys.map((k, i) => this.secret(k, `unsealKeys[${i}]`)));

  private registry(ctx: StoreContext): ScratchRegistry {
    return new ScratchRegistry(this.s.scratch.dir, this.target, ctx.log);
  }

  async probe(ctx: StoreContext): Promise<ProbeResult> {
    const h = await this.http();
    const hl = await health(h, ctx.signal);
    if (!hl.initialized) throw new LifeboatError('VaultNotInitialized', `${h.where()} is not initialised: there is nothing to back up yet`, true);
    if (hl.sealed) throw new LifeboatError('VaultSealed', `${h.where()} is sealed: unseal it (bao operator unseal), then run the backup again`, false);
    const storage = (await sealStatus(h, ctx.signal)).storage_type;
    if (storage && storage !== 'raft') {
      throw new LifeboatError('ConfigError', `${h.where()} keeps its data in '${storage}' storage; lifeboat backs up integrated (raft) storage only, through raft snapshots`);
    }
    const { token, tokenSetting } = await this.tokenFor('token');
    const self = (await h.json<{ data?: { ttl?: number; renewable?: boolean } }>({ method: 'GET', path: 'auth/token/lookup-self', token, tokenSetting, what: 'looking up the token', signal: ctx.signal })).body?.data;
    if (self?.renewable && self.ttl && self.ttl < RENEW_BELOW_SECONDS) {
      await h.json({ method: 'POST', path: 'auth/token/renew-self', token, tokenSetting, json: {}, what: 'renewing the token', signal: ctx.signal });
      ctx.log.info('vault token renewed', { target: this.target, ttlSeconds: self.ttl });
    } else if (self?.ttl && self.ttl < RENEW_BELOW_SECONDS) {
      ctx.log.warn(`the token in targets.${this.target}.token expires in ${Math.round(self.ttl / 3600)} hours and cannot be renewed: replace it`, { target: this.target });
    }
    const caps = await this.capabilities(h, token, tokenSetting, 'sys/storage/raft/snapshot', ctx.signal);
    if (!caps.includes('root') && !caps.includes('read')) {
      throw new LifeboatError('PermissionDenied', `${h.where()}: the token in targets.${this.target}.token may not read sys/storage/raft/snapshot (it has ${caps.join(', ') || 'nothing'}); give it the lifeboat-snapshot policy (docs/vault.md)`, true);
    }
    const tools: Record<string, string> = {};
    const binary = scratchBinary(this.s.scratch);
    if (binary) {
      const out = await toolText({ tool: 'bao', path: binary, args: ['version'], signal: ctx.signal }).catch(() => '');
      const m = /^(\S+) v(\S+)/.exec(out.trim());
      if (m) tools[m[1]!.toLowerCase() === 'vault' ? 'vault' : 'bao'] = m[2]!;
    }
    return { serverVersion: hl.version, tools, capabilities: [SNAPSHOT_FORMAT, ...(Object.keys(tools).length ? ['scratch-server'] : [])] };
  }

  private async capabilities(h: VaultHttp, token: string, tokenSetting: string, path: string, signal: AbortSignal): Promise<string[]> {
    const r = await h.json<{ data?: Record<string, string[]>; capabilities?: string[] }>({ method: 'POST', path: 'sys/capabilities-self', token, tokenSetting, json: { paths: [path] }, what: `reading the token's capabilities on ${path}`, signal });
    return r.body?.data?.[path] ?? r.body?.capabilities ?? [];
  }

  async items(): Promise<BackupItem[]> {
    // A raft snapshot is a gzip'd tar already: compressing it again gains nothing.
    return [{ item: SNAPSHOT, name: SNAPSHOT, file: 'snapshot.snap', format: SNAPSHOT_FORMAT, meta: { address: this.s.address }, compressed: true }];
  }

  /** Streams the snapshot to `sink`, checking it on the way; its raft index and term go into the manifest. Idempotent. */
  async backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    const h = await this.http();
    const { token, tokenSetting } = await this.tokenFor('token');
    ctx.progress({ stage: 'snapshot', item: item.item });
    const res = await h.open({ method: 'GET', path: 'sys/storage/raft/snapshot', token, tokenSetting, what: 'taking a raft snapshot', signal: ctx.signal });
    const { stream, result } = checkedStream(res, (copy) => verifySnapshot(copy, `taken from ${h.where()}`));
    result.catch(() => undefined);
    try {
      await sink(stream);
    } catch (err) {
      res.destroy();
      throw h.transportError(err, { what: 'taking a raft snapshot', signal: ctx.signal });
    }
    const f = await result;
    item.meta = { ...item.meta, index: f.index, term: f.term, snapshotVersion: f.version, stateBytes: f.stateBytes };
  }

  /** For `lifeboat verify`: SHA256SUMS and meta.json of the snapshot, without a server. Read-only. */
  async inspect(_ctx: StoreContext, item: BackupItem, plaintext: Readable): Promise<string> {
    if (item.format !== SNAPSHOT_FORMAT) throw unknownFormat(item);
    return describeSnapshot(await verifySnapshot(plaintext, `${item.file} of target ${this.target}`));
  }

  async preflight(_ctx: StoreContext, items: BackupItem[]): Promise<void> {
    const unknown = items.find((i) => i.format !== SNAPSHOT_FORMAT);
    if (unknown) throw unknownFormat(unknown);
  }

  /**
   * `into` = `snapshot`: replaces the whole server (snapshot-force), then
   * unseals it with the configured keys if it sealed itself, and waits until
   * it is active. A scratch name: a temporary server on this host (see
   * restore-scratch.ts). Idempotent: a retry posts the snapshot again, or
   * starts the temporary server afresh.
   */
  async restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable): Promise<void> {
    try {
      await this.preflight(ctx, [item]);
      if (into.startsWith(SCRATCH_PREFIX)) {
        return await restoreScratch({ store: this, target: this.target, s: this.s, ctx, item, name: this.checkScratch(into), source, registry: this.registry(ctx), unsealKeys: this.unsealKeys, tokenFor: (w) => this.tokenFor(w) });
      }
      if (into !== SNAPSHOT) throw badName(this.target, into);
      await this.restoreInPlace(ctx, item, source);
    } catch (err) {
      source.destroy();
      throw err;
    }
  }

  private async restoreInPlace(ctx: StoreContext, item: BackupItem, source: Readable): Promise<void> {
    const h = await this.http();
    const signal = ctx.signal;
    const hl = await health(h, signal);
    if (!hl.initialized) throw new LifeboatError('VaultNotInitialized', `${h.where()} is not initialised; initialise it (bao operator init), then restore with its root token as targets.${this.target}.restoreToken`, true);
    // A retry after a crash may find the server sealed by the snapshot an earlier attempt restored.
    if (hl.sealed) {
      await unseal(h, await this.unsealKeys(), `targets.${this.target}.unsealKeys`, signal);
      await waitActive(h, this.s.activeTimeoutSeconds * 1000, signal);
    }
    const { token, tokenSetting } = await this.tokenFor('restoreToken');
    const caps = await this.capabilities(h, token, tokenSetting, 'sys/storage/raft/snapshot-force', signal);
    if (!caps.includes('root') && !caps.includes('update')) {
      throw new LifeboatError('PermissionDenied', `${h.where()}: the token in targets.${this.target}.${tokenSetting} may not restore snapshots (it has ${caps.join(', ') || 'nothing'} on sys/storage/raft/snapshot-force); give it the lifeboat-restore policy (docs/vault.md). Nothing was changed`, true);
    }
    ctx.progress({ stage: 'restore', item: item.item });
    const f = await forceRestore(h, { token, tokenSetting, source, label: `${item.file} of target ${this.target}`, signal });
    ctx.log.warn('vault server replaced by the snapshot', { target: this.target, address: this.s.address, index: f.index, term: f.term });
    ctx.progress({ stage: 'unseal', item: item.item });
    const check = await this.tokenFor('token');
    await settleAfterRestore(h, { keys: this.unsealKeys, keySetting: `targets.${this.target}.unsealKeys`, ...check, timeoutMs: this.s.activeTimeoutSeconds * 1000, signal });
  }

  drillName(): string {
    return SNAPSHOT;
  }

  scratchName(token: string): string {
    return this.checkScratch(`${SCRATCH_PREFIX}${token.toLowerCase()}`);
  }

  private checkScratch(name: string): string {
    if (!/^lifeboat-drill-[0-9a-z]{1,40}$/.test(name)) throw badName(this.target, name);
    return name;
  }

  /**
   * The own server (`snapshot`) cannot be dropped: dropping it deletes the
   * drill markers of every drill, so an in-place drill proves the restore
   * brings them back. A scratch name: its temporary server is stopped and its
   * folder deleted (and any a dead worker left behind). Idempotent.
   */
  async drop(ctx: StoreContext, name: string): Promise<void> {
    ctx.progress({ stage: 'drop', item: name });
    if (name === SNAPSHOT) {
      await (await this.markers(name)).remove(ctx);
      return;
    }
    const reg = this.registry(ctx);
    await reg.ensureRoot();
    await reg.sweep(this.s.scratch.maxAgeSeconds * 1000, this.checkScratch(name), async (f) => (await serverPids(f)).length > 0);
    await reg.remove(name);
  }

  /** The markers in the own server, or in a temporary one (whose tokens are those of the snapshot's time). */
  private async markers(name: string): Promise<KvMarkers> {
    let address = this.s.address;
    if (name !== SNAPSHOT) {
      const state = await new ScratchRegistry(this.s.scratch.dir, this.target, { info: () => undefined, warn: () => undefined }).read(this.checkScratch(name));
      if (!state?.ready || !state.address) {
        throw new LifeboatError('ScratchMissing', `target ${this.target} has no temporary server '${name}' on this host${state ? ' that finished its restore' : ''}; its restore did not run here, or it was dropped`, true);
      }
      address = state.address;
    }
    const { token, tokenSetting } = await this.tokenFor('drillToken');
    return new KvMarkers(await this.http(address), this.s.kvMount, token, tokenSetting);
  }

  async seedMarkers(ctx: StoreContext, name: string, count: number, nonce: string): Promise<void> {
    await (await this.markers(name)).seed(ctx, count, nonce);
  }

  async countMarkers(ctx: StoreContext, name: string, nonce: string): Promise<MarkerCount> {
    return { found: await (await this.markers(name)).count(ctx, nonce) };
  }

  restoreNotice(into: string): { text: string; approvalRequired: boolean } | undefined {
    if (into !== SNAPSHOT) return undefined;
    return {
      text:
        `restoring target ${this.target} replaces the whole Vault server at ${this.s.address} with the snapshot: every secret, policy, auth method, mount, token and lease. ` +
        'Whatever was written after the backup is lost, and tokens created since stop working. The server may seal itself and then needs the unseal keys of the snapshot time.',
      approvalRequired: true,
    };
  }

  isPermanent(err: unknown): boolean {
    return err instanceof LifeboatError && err.permanent;
  }
}

function unknownFormat(item: BackupItem): LifeboatError {
  return new LifeboatError('ManifestInvalid', `item ${item.item} has format ${item.format}, which the vault kind of this lifeboat does not know; upgrade lifeboat`);
}

function badName(target: string, name: string): LifeboatError {
  return new LifeboatError('InvalidName', `target ${target} (vault) restores into its own server, named '${SNAPSHOT}', or into a temporary server named '${SCRATCH_PREFIX}<hex>'; '${name}' is neither`, true);
}
