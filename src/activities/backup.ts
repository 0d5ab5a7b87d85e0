import { artifactKey, manifestKey } from '../domain/layout';
import type { ArtifactRecord, Manifest } from '../domain/manifest';
import { manifestBytes } from '../domain/manifest';
import { checkMarkers, MARKERS_PER_KIND, type MarkerResult } from '../domain/markers';
import type { DrillRecord } from '../domain/plan';
import { fingerprints, storeArtifact } from '../repo/artifacts';
import { compressedName, DEFAULT_COMPRESSION, NO_COMPRESSION } from '../domain/compression';
import { writeDrillRecord, writeManifest } from '../repo/catalog';
import { openStore, type BackupItem, type ProbeResult } from '../stores';
import { inActivity } from './context';
import { seconds, type Deps } from './deps';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const LIFEBOAT_VERSION: string = require('../../package.json').version;

/** The backup's and the drill's activities: probe, dump, manifest, markers. */
export function backupActivities(d: Deps) {
  return {
    async probeTarget(input: { target: string }): Promise<{ probe: ProbeResult; items: BackupItem[] }> {
      const store = openStore(d.config, input.target);
      return inActivity(store, async (ctx) => ({ probe: await store.probe(ctx), items: await store.items(ctx) }));
    },

    /** Dumps one item into the repository. Idempotent: a retry overwrites the same key. */
    async backupItem(input: { target: string; backupId: string; item: BackupItem }): Promise<ArtifactRecord> {
      const store = openStore(d.config, input.target);
      return inActivity(
        store,
        async (ctx) => {
          const started = performance.now();
          const encryption = d.config.encryption ? ('age' as const) : ('none' as const);
          const compression = input.item.compressed ? NO_COMPRESSION : (d.config.compression ?? DEFAULT_COMPRESSION);
          const plainFile = compressedName(input.item.file, compression.algorithm);
          const file = encryption === 'age' ? `${plainFile}.age` : plainFile;
          const key = artifactKey(input.target, input.backupId, file);
          const r = await d.repo();
          let stored = { bytes: 0, sha256: '', plaintextBytes: 0, blocks: { size: 0, sha256: '' } };
          await store.backup(ctx, input.item, async (plaintext) => {
            stored = await storeArtifact(r, key, plaintext, d.config.encryption, ctx.signal, (n) => ctx.progress({ stage: 'upload', item: input.item.item, bytes: n, totalBytes: input.item.estimatedBytes }), compression);
          });
          ctx.log.info('artifact stored', { url: r.url(key), bytes: stored.bytes });
          return {
            file,
            item: input.item.item,
            name: input.item.name,
            format: input.item.format,
            encryption,
            ...(compression.algorithm === 'zstd' ? { compression: 'zstd' as const } : {}),
            bytes: stored.bytes,
            sha256: stored.sha256,
            blocks: stored.blocks,
            seconds: seconds(started),
            plaintextBytes: stored.plaintextBytes,
            // A store may add facts to the item while it backs it up.
            ...(input.item.meta ? { meta: input.item.meta } : {}),
          };
        },
        await d.scope(input.target, input.backupId),
        `${input.target}/${input.item.item}`,
      );
    },

    /** Signs and writes the manifest, last, which is what makes the backup valid. Idempotent. */
    async finishBackup(input: { target: string; kind: string; backupId: string; probe: ProbeResult; artifacts: ArtifactRecord[]; startedAt: string }): Promise<{ manifest: string; bytes: number; signed: boolean }> {
      return inActivity(null, async () => {
        const m: Manifest = {
          schema: 1,
          backupId: input.backupId,
          target: input.target,
          kind: input.kind,
          server: { version: input.probe.serverVersion },
          tools: input.probe.tools,
          lifeboatVersion: LIFEBOAT_VERSION,
          startedAt: input.startedAt,
          finishedAt: new Date().toISOString(),
          encryption: { format: d.config.encryption ? 'age' : 'none', recipients: fingerprints(d.config.encryption) },
          artifacts: input.artifacts,
        };
        const r = await d.repo();
        const key = await d.signingKey();
        await writeManifest(r, m, key);
        return { manifest: r.url(manifestKey(input.target, input.backupId)), bytes: manifestBytes(m), signed: key !== undefined };
      });
    },

    /** Keeps a drill's result in the repository for `lifeboat report`. Idempotent. */
    async recordDrill(input: { record: DrillRecord }): Promise<{ key: string }> {
      return inActivity(null, async () => {
        const r = await d.repo();
        return { key: r.url(await writeDrillRecord(r, input.record)) };
      });
    },

    /**
     * Seeds the drill's markers; returns where, how many, the scratch name, and
     * whether the target may be drilled in place (not when restoring it needs
     * an explicit approval, e.g. a Vault server replaced whole). Idempotent for one nonce.
     */
    async seedMarkers(input: { target: string; nonce: string }): Promise<{ name: string; count: number; scratch: string; inPlace: boolean }> {
      const store = openStore(d.config, input.target);
      return inActivity(store, async (ctx) => {
        const name = store.drillName();
        const count = MARKERS_PER_KIND[store.kind] ?? 100;
        await store.seedMarkers(ctx, name, count, input.nonce);
        return { name, count, scratch: store.scratchName(input.nonce.replace(/-/g, '').slice(0, 8)), inPlace: !store.restoreNotice?.(name)?.approvalRequired };
      });
    },

    async countMarkers(input: { target: string; name: string; nonce: string; expected: number }): Promise<MarkerResult> {
      const store = openStore(d.config, input.target);
      return inActivity(store, async (ctx) => checkMarkers(input.expected, (await store.countMarkers(ctx, input.name, input.nonce)).found));
    },
  };
}
