import { Readable } from 'node:stream';
import type { BackupItem, Store, StoreContext } from '../../src/stores';
import { KINDS } from './kinds';

/** The Store contract, run against every kind's real server. */
const ctx: StoreContext = { signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: () => undefined } };

async function backupAll(store: Store): Promise<Array<{ item: BackupItem; bytes: Buffer }>> {
  const out = [];
  for (const item of await store.items(ctx)) {
    let bytes = Buffer.alloc(0);
    await store.backup(ctx, item, async (plaintext) => {
      const chunks: Buffer[] = [];
      for await (const c of plaintext) chunks.push(c as Buffer);
      bytes = Buffer.concat(chunks);
    });
    out.push({ item, bytes });
  }
  return out;
}

async function restoreAll(store: Store, dump: Array<{ item: BackupItem; bytes: Buffer }>, into: string): Promise<void> {
  for (const { item, bytes } of dump) await store.restore(ctx, item, into, Readable.from([bytes]));
}

describe.each(KINDS.map((k) => [k.kind, k] as const))('%s store contract', (_kind, k) => {
  let store: Store;
  beforeAll(async () => {
    store = await k.setup();
  });
  afterAll(async () => {
    await k.teardown();
  });

  it('probes the server', async () => {
    const p = await store.probe(ctx);
    expect(p.serverVersion).toMatch(/\d+\.\d+/);
    expect(store.kind).toBe(k.kind);
  });

  it('backs up, drops, restores, and every marker comes back', async () => {
    const name = store.drillName();
    await store.seedMarkers(ctx, name, 37, 'contract-nonce');
    await store.seedMarkers(ctx, name, 37, 'contract-nonce'); // idempotent
    const dump = await backupAll(store);
    expect(dump.length).toBeGreaterThan(0);
    expect(dump.every((d) => d.item.name.length > 0 && d.item.file.length > 0)).toBe(true);
    await store.drop(ctx, name);
    await store.drop(ctx, name); // idempotent
    await restoreAll(store, dump.filter((d) => d.item.name === name), name);
    expect((await store.countMarkers(ctx, name, 'contract-nonce')).found.sort((a, b) => a - b)).toEqual(Array.from({ length: 37 }, (_, i) => i + 1));
    expect((await store.countMarkers(ctx, name, 'other-nonce')).found).toEqual([]);
  });

  it('restores under another name, twice (a retry starts clean), and leaves the original alone', async () => {
    const name = store.drillName();
    const scratch = store.scratchName('c0ffee01');
    const dump = (await backupAll(store)).filter((d) => d.item.name === name);
    await restoreAll(store, dump, scratch);
    await restoreAll(store, dump, scratch);
    expect((await store.countMarkers(ctx, scratch, 'contract-nonce')).found).toHaveLength(37);
    expect((await store.countMarkers(ctx, name, 'contract-nonce')).found).toHaveLength(37);
    await store.drop(ctx, scratch);
  });

  it('calls refused credentials permanent', async () => {
    const bad = await k.badCredentials();
    const err = await bad.probe(ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(bad.isPermanent(err)).toBe(true);
  });
});
