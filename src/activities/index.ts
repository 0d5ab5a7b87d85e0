import { targetOf, type Config } from '../config';
import type { TargetHooks } from '../config/hooks';
import { hookName, runHook, waitReady } from '../stores/hooks';
import type { Readable } from 'node:stream';
import { artifactKey, manifestKey, verificationKey } from '../domain/layout';
import type { ArtifactRecord, Manifest } from '../domain/manifest';
import { manifestBytes } from '../domain/manifest';
import { checkMarkers, MARKERS_PER_KIND, type MarkerResult } from '../domain/markers';
import { validateName, validateSubPrefix } from '../domain/names';
import type { DrillRecord, PlannedArtifact, RestoreInput, RestorePlan, TargetPrunePlan, TargetRef, TargetVerification } from '../domain/plan';
import { LifeboatError, messageOf } from '../errors';
import { openRepository, type Repository } from '../repo';
import { counter, fingerprints, loadIdentities, readArtifact, storeArtifact, verifyArtifact } from '../repo/artifacts';
import { deleteBackup, listBackups, listIncomplete, readManifest, readVerification, writeDrillRecord, writeManifest } from '../repo/catalog';
import { applyRetention } from '../domain/retention';
import { openStore, type BackupItem, type ProbeResult } from '../stores';
import { inActivity } from './context';
import { createPitrActivities } from './pitr';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const LIFEBOAT_VERSION: string = require('../../package.json').version;

/** A backup folder without a manifest this old is an interrupted backup, not a running one. */
const INCOMPLETE_AFTER_MS = 24 * 3600 * 1000;

const seconds = (since: number) => Math.round((performance.now() - since) / 10) / 100;

function itemOf(a: ArtifactRecord): BackupItem {
  return { item: a.item, name: a.name, file: a.file, format: a.format, meta: a.meta };
}

/**
 * The activities, bound to the worker's config. Inputs are names and ids; each
 * activity resolves credentials itself, so no secret enters workflow history.
 */
export function createActivities(config: Config) {
  let repoPromise: Promise<Repository> | undefined;
  const repo = () => (repoPromise ??= openRepository(config));

  async function artifactOf(target: string, backupId: string, file: string): Promise<{ manifest: Manifest; record: ArtifactRecord }> {
    const manifest = await readManifest(await repo(), target, backupId);
    const record = manifest.artifacts.find((a) => a.file === file);
    if (!record) throw new LifeboatError('ArtifactNotFound', `backup '${backupId}' of target '${target}' has no artifact '${file}'`);
    return { manifest, record };
  }

  /** The target's repository folder, for stores that keep more than one stream per item. */
  const scope = async (target: string, backupId?: string) => ({
    repository: { repo: await repo(), dir: validateName('target', target), encryption: config.encryption, location: config.repository, ...(backupId ? { backupId } : {}) },
  });

  return {
    ...createPitrActivities(config),
    /** The targets to work on, with their kinds; all configured ones when none are named. */
    async describeTargets(input: { targets?: string[] }): Promise<TargetRef[]> {
      const names = input.targets?.length ? input.targets : [...config.targets.keys()];
      return inActivity(null, async () => names.map((target) => ({ target, kind: openStore(config, target).kind })));
    },

    async probeTarget(input: { target: string }): Promise<{ probe: ProbeResult; items: BackupItem[] }> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => ({ probe: await store.probe(ctx), items: await store.items(ctx) }));
    },

    /** Dumps one item into the repository. Idempotent: a retry overwrites the same key. */
    async backupItem(input: { target: string; backupId: string; item: BackupItem }): Promise<ArtifactRecord> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => {
        const started = performance.now();
        const encryption = config.encryption ? ('age' as const) : ('none' as const);
        const file = encryption === 'age' ? `${input.item.file}.age` : input.item.file;
        const key = artifactKey(input.target, input.backupId, file);
        const r = await repo();
        let stored = { bytes: 0, sha256: '' };
        await store.backup(ctx, input.item, async (plaintext) => {
          stored = await storeArtifact(r, key, plaintext, config.encryption, ctx.signal, (n) => ctx.progress({ stage: 'upload', item: input.item.item, bytes: n }));
        });
        ctx.log.info('artifact stored', { url: r.url(key), bytes: stored.bytes });
        return {
          file,
          item: input.item.item,
          name: input.item.name,
          format: input.item.format,
          encryption,
          bytes: stored.bytes,
          sha256: stored.sha256,
          seconds: seconds(started),
          // A store may add facts to the item while it backs it up.
          ...(input.item.meta ? { meta: input.item.meta } : {}),
        };
      }, await scope(input.target, input.backupId));
    },

    /** Writes the manifest, last, which is what makes the backup valid. Idempotent. */
    async finishBackup(input: { target: string; kind: string; backupId: string; probe: ProbeResult; artifacts: ArtifactRecord[]; startedAt: string }): Promise<{ manifest: string; bytes: number }> {
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
          encryption: { format: config.encryption ? 'age' : 'none', recipients: fingerprints(config.encryption) },
          artifacts: input.artifacts,
        };
        const r = await repo();
        await writeManifest(r, m);
        return { manifest: r.url(manifestKey(input.target, input.backupId)), bytes: manifestBytes(m) };
      });
    },

    /** Reads the manifests and says what a restore would do. Read-only. */
    async planRestore(input: Pick<RestoreInput, 'backupId' | 'targets' | 'only' | 'into' | 'subPrefix'>): Promise<RestorePlan> {
      return inActivity(null, async () => {
        const r = await repo();
        const targets = [];
        const names = input.targets?.length ? input.targets : [...config.targets.keys()];
        for (const target of names) {
          // Without named targets, the backup's own targets are restored: skip those it lacks.
          if (!input.targets?.length && !(await r.exists(manifestKey(target, input.backupId)))) continue;
          const m = await readManifest(r, target, input.backupId);
          const kind = openStore(config, target).kind;
          if (m.kind !== kind) {
            throw new LifeboatError('ConfigError', `backup '${input.backupId}' of target '${target}' is of kind ${m.kind}, but the target is now configured as ${kind}`);
          }
          const renames = input.into?.[target] ?? {};
          const only = input.only?.[target];
          const missing = only?.filter((n) => !m.artifacts.some((a) => a.name === n)) ?? [];
          if (missing.length) {
            throw new LifeboatError('ArtifactNotFound', `backup '${input.backupId}' of target '${target}' has no ${missing.join(', ')}; it has ${m.artifacts.map((a) => a.name).join(', ')}`);
          }
          const artifacts: PlannedArtifact[] = m.artifacts.filter((a) => !only || only.includes(a.name)).map((a) => ({ file: a.file, item: a.item, name: a.name, into: validateName('restore name', renames[a.name] ?? a.name), bytes: a.bytes }));
          const sub = input.subPrefix?.[target];
          if (sub !== undefined && kind !== 'bucket') {
            throw new LifeboatError('ConfigError', `target '${target}' is a ${kind} target: only bucket targets restore a sub-prefix`);
          }
          targets.push({ target, kind, serverVersion: m.server.version, artifacts, bytes: manifestBytes(m), ...(sub !== undefined ? { subPrefix: validateSubPrefix(sub) } : {}) });
        }
        if (targets.length === 0) {
          throw new LifeboatError('BackupNotFound', `backup '${input.backupId}' does not exist for any configured target (${names.join(', ')}) in ${r.url('')}; run 'lifeboat ls' to see the backups`);
        }
        return { backupId: input.backupId, targets, bytes: targets.reduce((s, t) => s + t.bytes, 0) };
      });
    },

    /**
     * Proves an artifact before anything destructive: SHA-256 and age
     * authentication to the last chunk, and with `inspect` that the restore
     * tool can read it (e.g. `pg_restore --list`). Read-only.
     */
    async verifyStoredArtifact(input: { target: string; backupId: string; file: string; inspect?: boolean }): Promise<{ bytes: number; inspected?: string }> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => {
        const { manifest, record } = await artifactOf(input.target, input.backupId, input.file);
        // The bytes were checked against the manifest: a tool that cannot read them will not on a retry either.
        const inspect =
          input.inspect && store.inspect
            ? (plaintext: Readable) =>
                store.inspect!(ctx, itemOf(record), plaintext).catch((err: unknown) => {
                  if (ctx.signal.aborted) throw err;
                  throw new LifeboatError('ArtifactUnreadable', messageOf(err));
                })
            : undefined;
        const { inspected } = await verifyArtifact(await repo(), artifactKey(input.target, input.backupId, input.file), record, await loadIdentities(config.encryption), {
          onBytes: (n) => ctx.progress({ stage: 'verify', item: input.file, bytes: n, totalBytes: record.bytes }),
          signal: ctx.signal,
          inspect,
          sealedFor: manifest.encryption.recipients,
        });
        return { bytes: record.bytes, inspected };
      }, await scope(input.target));
    },

    /** Stores a verification result next to the backup (after its manifest). Idempotent. */
    async recordVerification(input: { result: TargetVerification }): Promise<void> {
      return inActivity(null, async () => {
        const v = input.result;
        await (await repo()).putText(verificationKey(v.target, v.backupId), `${JSON.stringify(v, null, 2)}\n`);
      });
    },

    /** Drops and recreates `into`, then restores the artifact. Idempotent: a retry starts from a clean database. */
    async restoreItem(input: { target: string; backupId: string; file: string; into: string; subPrefix?: string }): Promise<{ seconds: number }> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => {
        const started = performance.now();
        const { record } = await artifactOf(input.target, input.backupId, input.file);
        const r = await repo();
        const identities = await loadIdentities(config.encryption);
        const plaintext = await readArtifact(r, artifactKey(input.target, input.backupId, input.file), record, identities, ctx.signal);
        const counted = plaintext.pipe(counter((n) => ctx.progress({ stage: 'restore', item: record.item, bytes: n })));
        plaintext.on('error', (err) => counted.destroy(err));
        const options = input.subPrefix !== undefined ? { subPrefix: validateSubPrefix(input.subPrefix) } : undefined;
        await store.restore(ctx, itemOf(record), validateName('restore name', input.into), counted, options);
        return { seconds: seconds(started) };
      }, await scope(input.target));
    },

    async dropItem(input: { target: string; name: string }): Promise<void> {
      const store = openStore(config, input.target);
      return inActivity(store, (ctx) => store.drop(ctx, validateName('name', input.name)), await scope(input.target));
    },

    /** Applies the retention policy to a target's backups: what to keep and why. Read-only. */
    async planPrune(input: { target: string }): Promise<TargetPrunePlan> {
      return inActivity(null, async () => {
        const r = await repo();
        const facts = [];
        for (const b of await listBackups(r, [input.target])) {
          facts.push({ backupId: b.backupId, verified: (await readVerification(r, input.target, b.backupId))?.ok === true });
        }
        const incomplete = await listIncomplete(r, input.target, new Date(Date.now() - INCOMPLETE_AFTER_MS));
        return { target: input.target, decisions: applyRetention(facts, config.retention), incomplete };
      });
    },

    /** Deletes one backup, manifest first; skipped while Object Lock protects it. Idempotent. */
    async deleteBackup(input: { target: string; backupId: string }): Promise<{ deleted: boolean; lockedUntil?: string }> {
      return inActivity(null, async () => {
        const r = await deleteBackup(await repo(), input.target, input.backupId);
        return { deleted: r.deleted, ...(r.lockedUntil ? { lockedUntil: r.lockedUntil.toISOString() } : {}) };
      });
    },

    /** Before anything is stopped or dropped: can this server take these items (e.g. extensions)? Read-only. */
    async preflightRestore(input: { target: string; backupId: string; files: string[] }): Promise<void> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => {
        if (!store.preflight) return;
        const manifest = await readManifest(await repo(), input.target, input.backupId);
        await store.preflight(ctx, manifest.artifacts.filter((a) => input.files.includes(a.file)).map(itemOf));
      });
    },

    /** Runs a target's writer hooks of one phase, in order. Hooks must be idempotent: they are retried. */
    async runHooks(input: { target: string; phase: keyof TargetHooks }): Promise<{ ran: string[] }> {
      return inActivity(null, async (ctx) => {
        const hooks = targetOf(config, input.target).hooks?.[input.phase] ?? [];
        const ran: string[] = [];
        for (const h of hooks) {
          ctx.progress({ stage: input.phase, item: hookName(h) });
          await runHook(h, {}, ctx.signal);
          ran.push(hookName(h));
        }
        return { ran };
      });
    },

    /** After a restore: the readiness URL answers and the configured queries hold. Read-only. */
    async sanityChecks(input: { target: string }): Promise<{ passed: string[] }> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => {
        const checks = targetOf(config, input.target).checks;
        const passed: string[] = [];
        if (checks?.readyUrl) {
          await waitReady(checks.readyUrl, checks.readyTimeoutSeconds, ctx.signal);
          passed.push(`ready ${checks.readyUrl}`);
        }
        for (const q of checks?.sql ?? []) {
          if (!store.check) throw new LifeboatError('ConfigError', `target '${input.target}' (${store.kind}) has checks.sql, but ${store.kind} targets cannot run SQL checks`);
          if (!(await store.check(ctx, q.database, q.query))) {
            throw new LifeboatError('CheckFailed', `check on target '${input.target}'${q.database ? ` (${q.database})` : ''} did not hold after the restore: ${q.query}`);
          }
          passed.push(q.query);
        }
        return { passed };
      });
    },

    /** After a prune: stored objects no backup references any more (a bucket's pool). Idempotent. */
    async collectGarbage(input: { target: string }): Promise<{ deleted: number; locked: number }> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => (store.collectGarbage ? store.collectGarbage(ctx) : { deleted: 0, locked: 0 }), await scope(input.target));
    },

    /** Keeps a drill's result in the repository for `lifeboat report`. Idempotent. */
    async recordDrill(input: { record: DrillRecord }): Promise<{ key: string }> {
      return inActivity(null, async () => {
        const r = await repo();
        return { key: r.url(await writeDrillRecord(r, input.record)) };
      });
    },

    /** Seeds the drill's markers; returns where, and how many. Idempotent for one nonce. */
    async seedMarkers(input: { target: string; nonce: string }): Promise<{ name: string; count: number; scratch: string }> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => {
        const name = store.drillName();
        const count = MARKERS_PER_KIND[store.kind] ?? 100;
        await store.seedMarkers(ctx, name, count, input.nonce);
        return { name, count, scratch: store.scratchName(input.nonce.replace(/-/g, '').slice(0, 8)) };
      });
    },

    async countMarkers(input: { target: string; name: string; nonce: string; expected: number }): Promise<MarkerResult> {
      const store = openStore(config, input.target);
      return inActivity(store, async (ctx) => checkMarkers(input.expected, (await store.countMarkers(ctx, input.name, input.nonce)).found));
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
