import type { Config } from '../config';
import { messageOf } from '../errors';
import { openStore, type StoreContext } from '../stores';

/**
 * At worker start: what a worker that died left behind on this host (a
 * decrypted spool, a scratch server of a drill), removed by each store that
 * knows how. Returns what was removed, for the log; a store that fails to
 * clean up is reported, not fatal.
 */
export async function sweepAll(config: Config, targets: string[]): Promise<string[]> {
  const out: string[] = [];
  const ctx: StoreContext = { signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: () => undefined } };
  for (const target of targets) {
    try {
      const store = openStore(config, target);
      for (const s of (await store.sweep?.(ctx)) ?? []) out.push(`${target}: ${s}`);
    } catch (err) {
      out.push(`${target}: could not check for leftovers: ${messageOf(err)}`);
    }
  }
  return out;
}
