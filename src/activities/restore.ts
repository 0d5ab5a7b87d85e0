import type { Readable } from 'node:stream';
import { targetOf } from '../config';
import { artifactKey, manifestKey, verificationKey } from '../domain/layout';
import type { ArtifactRecord, Manifest } from '../domain/manifest';
import { validateName, validateSubPrefix } from '../domain/names';
import type { PlannedArtifact, RestoreInput, RestorePlan, TargetPlan, TargetVerification } from '../domain/plan';
import { LifeboatError, messageOf } from '../errors';
import { loadIdentities, readArtifact, readBlockList, verifyArtifact } from '../repo/artifacts';
import { readManifest } from '../repo/catalog';
import { openStore, type BackupItem, type StoreContext } from '../stores';
import { waitReady } from '../stores/hooks';
import { inActivity } from './context';
import { seconds, type Deps } from './deps';

function itemOf(a: ArtifactRecord): BackupItem {
  return { item: a.item, name: a.name, file: a.file, format: a.format, meta: a.meta };
}

interface RestoreItemInput {
  target: string;
  backupId: string;
  file: string;
  into: string;
  subPrefix?: string;
  pin?: string;
  owner?: string;
  allowUnsigned?: boolean;
}

/** The restore's activities: plan, verify, drop, restore, checks. */
export function restoreActivities(d: Deps) {
  async function artifactOf(target: string, backupId: string, file: string, allowUnsigned?: boolean): Promise<{ manifest: Manifest; record: ArtifactRecord }> {
    const manifest = await readManifest(await d.repo(), target, backupId, d.trust(allowUnsigned));
    const record = manifest.artifacts.find((a) => a.file === file);
    if (!record) throw new LifeboatError('ArtifactNotFound', `backup '${backupId}' of target '${target}' has no artifact '${file}'`);
    return { manifest, record };
  }

  /**
   * The verify pass over one stored artifact: SHA-256 and age authentication
   * to the last chunk, reported as the `verify` stage. Returns the pin of the
   * object it read (and what `inspect` said of the plaintext).
   */
  async function verifyPass(
    ctx: StoreContext,
    input: { target: string; backupId: string; file: string },
    manifest: Manifest,
    record: ArtifactRecord,
    more: { inspect?: (plaintext: Readable) => Promise<string>; decode: boolean },
  ): Promise<{ inspected?: string; pin: string }> {
    return verifyArtifact(await d.repo(), artifactKey(input.target, input.backupId, input.file), record, await loadIdentities(d.config.encryption), {
      onBytes: (n) => ctx.progress({ stage: 'verify', item: input.file, bytes: n, totalBytes: record.bytes }),
      signal: ctx.signal,
      sealedFor: manifest.encryption.recipients,
      ...more,
    });
  }

  /** One item into `into`: see restoreItem and restoreNewItem. */
  async function restoreOne(input: RestoreItemInput, streamed: boolean): Promise<{ seconds: number }> {
    const store = openStore(d.config, input.target);
    return inActivity(
      store,
      async (ctx) => {
        const started = performance.now();
        const { manifest, record } = await artifactOf(input.target, input.backupId, input.file, input.allowUnsigned);
        const identities = await loadIdentities(d.config.encryption);
        const repo = await d.repo();
        const key = artifactKey(input.target, input.backupId, input.file);
        const into = validateName('restore name', input.into);
        // Progress in stored bytes, the unit of the plan's total (the plaintext may be much larger).
        const onStoredBytes = (n: number) => ctx.progress({ stage: 'restore', item: record.item, bytes: n, totalBytes: record.bytes });
        const options = {
          ...(input.subPrefix !== undefined ? { subPrefix: validateSubPrefix(input.subPrefix) } : {}),
          ...(input.owner ? { owner: validateName('owner', input.owner) } : {}),
        };
        const restoreFrom = async (plaintext: Readable, extra: { createOnly?: boolean }) => {
          try {
            await store.restore(ctx, itemOf(record), into, plaintext, { ...options, ...extra });
          } finally {
            // A restore that failed before it read (the database could not be created) releases the repository read.
            plaintext.destroy();
          }
        };
        let pin = input.pin;
        if (streamed) {
          const blocks = store.createsNew?.(itemOf(record))
            ? await readBlockList(repo, key, record).catch((err: unknown) => {
                ctx.log.warn(`the block list of ${repo.url(key)} does not read (${messageOf(err)}): verifying the whole artifact before the restore instead`, { target: input.target });
                return undefined;
              })
            : undefined;
          if (blocks) {
            try {
              await restoreFrom(await readArtifact(repo, key, record, identities, { signal: ctx.signal, onStoredBytes, blocks }), { createOnly: true });
              return { seconds: seconds(started) };
            } catch (err) {
              if (!(err instanceof LifeboatError && err.type === 'AlreadyExists')) throw err;
              ctx.log.info(`${messageOf(err)}: verifying the artifact before it is replaced`, { target: input.target });
            }
          }
          // Whatever kept it from streaming, nothing verified this artifact yet: do it before anything is dropped.
          ctx.progress({ stage: 'verify', item: input.file });
          pin = (await verifyPass(ctx, input, manifest, record, { decode: false })).pin;
        }
        await restoreFrom(await readArtifact(repo, key, record, identities, { signal: ctx.signal, pin, onStoredBytes }), {});
        return { seconds: seconds(started) };
      },
      await d.scope(input.target),
      `${input.target}/${input.file}`,
    );
  }

  return {
    /**
     * Reads the (authentic) manifests and says what a restore would do: per
     * target, the items and where they go, the bytes of just those, and
     * whether the target's own data is replaced (in place) or only copied.
     * Read-only.
     */
    async planRestore(input: Pick<RestoreInput, 'backupId' | 'targets' | 'only' | 'into' | 'subPrefix' | 'allowUnsigned'>): Promise<RestorePlan> {
      return inActivity(null, async () => {
        const r = await d.repo();
        const targets: TargetPlan[] = [];
        const names = input.targets?.length ? input.targets : [...d.config.targets.keys()];
        for (const target of names) {
          // Without named targets, the backup's own targets are restored: skip those it lacks.
          if (!input.targets?.length && !(await r.exists(manifestKey(target, input.backupId)))) continue;
          const m = await readManifest(r, target, input.backupId, d.trust(input.allowUnsigned));
          const store = openStore(d.config, target);
          if (m.kind !== store.kind) {
            throw new LifeboatError('ConfigError', `backup '${input.backupId}' of target '${target}' is of kind ${m.kind}, but the target is now configured as ${store.kind}`);
          }
          const renames = input.into?.[target] ?? {};
          const only = input.only?.[target];
          const missing = only?.filter((n) => !m.artifacts.some((a) => a.name === n)) ?? [];
          if (missing.length) {
            throw new LifeboatError('ArtifactNotFound', `backup '${input.backupId}' of target '${target}' has no ${missing.join(', ')}; it has ${m.artifacts.map((a) => a.name).join(', ')}`);
          }
          const artifacts: PlannedArtifact[] = m.artifacts
            .filter((a) => !only || only.includes(a.name))
            .map((a) => {
              const into = validateName('restore name', renames[a.name] ?? a.name);
              const streamed = into !== a.name && a.blocks !== undefined && store.createsNew?.(itemOf(a)) === true;
              return { file: a.file, item: a.item, name: a.name, into, bytes: a.bytes, ...(streamed ? { streamed: true as const } : {}) };
            });
          const sub = input.subPrefix?.[target];
          if (sub !== undefined && store.kind !== 'bucket') {
            throw new LifeboatError('ConfigError', `target '${target}' is a ${store.kind} target: only bucket targets restore a sub-prefix`);
          }
          const mode = artifacts.some((a) => a.into === a.name) ? 'in-place' : 'copy';
          const notices = artifacts.map((a) => store.restoreNotice?.(a.into)).filter((n) => n !== undefined);
          targets.push({
            target,
            kind: store.kind,
            mode,
            serverVersion: m.server.version,
            artifacts,
            bytes: artifacts.reduce((s, a) => s + a.bytes, 0),
            ...(sub !== undefined ? { subPrefix: validateSubPrefix(sub) } : {}),
            ...(notices.length ? { notice: notices.map((n) => n.text).join(' '), approvalRequired: notices.some((n) => n.approvalRequired) } : {}),
          });
        }
        // Streaming without a verify pass is only for a restore that replaces nothing: with any target restored in
        // place, every artifact is verified before the first drop (a damaged copy must not be found half-way).
        if (targets.some((t) => t.mode === 'in-place')) for (const t of targets) for (const a of t.artifacts) delete a.streamed;
        if (targets.length === 0) {
          throw new LifeboatError('BackupNotFound', `backup '${input.backupId}' does not exist for any configured target (${names.join(', ')}) in ${r.url('')}; run 'lifeboat ls' to see the backups`);
        }
        return { backupId: input.backupId, targets, bytes: targets.reduce((s, t) => s + t.bytes, 0) };
      });
    },

    /**
     * Proves an artifact before anything destructive: SHA-256 and age
     * authentication to the last chunk, and with `inspect` that the restore
     * tool can read it (e.g. `pg_restore --list`). Returns a pin of the exact
     * object it read, so the restore reads the same one. Read-only.
     */
    async verifyStoredArtifact(input: { target: string; backupId: string; file: string; inspect?: boolean; allowUnsigned?: boolean }): Promise<{ bytes: number; inspected?: string; pin: string }> {
      const store = openStore(d.config, input.target);
      return inActivity(
        store,
        async (ctx) => {
          const { manifest, record } = await artifactOf(input.target, input.backupId, input.file, input.allowUnsigned);
          // The bytes were checked against the manifest: a tool that cannot read them will not on a retry either.
          const inspect =
            input.inspect && store.inspect
              ? (plaintext: Readable) =>
                  store.inspect!(ctx, itemOf(record), plaintext).catch((err: unknown) => {
                    if (ctx.signal.aborted) throw err;
                    throw new LifeboatError('ArtifactUnreadable', messageOf(err));
                  })
              : undefined;
          const { inspected, pin } = await verifyPass(ctx, input, manifest, record, { inspect, decode: input.inspect === true });
          return { bytes: record.bytes, inspected, pin };
        },
        await d.scope(input.target),
        `${input.target}/${input.file}`,
      );
    },

    /** Stores a verification result next to the backup (after its manifest). Idempotent. */
    async recordVerification(input: { result: TargetVerification }): Promise<void> {
      return inActivity(null, async () => {
        const v = input.result;
        await (await d.repo()).putText(verificationKey(v.target, v.backupId), `${JSON.stringify(v, null, 2)}\n`);
      });
    },

    /**
     * Drops and recreates `into`, then restores the artifact: the very object
     * the verify pass read (`pin`). Idempotent: a retry starts from a clean database.
     */
    async restoreItem(input: RestoreItemInput): Promise<{ seconds: number }> {
      return restoreOne(input, false);
    },

    /**
     * For an item the plan marked `streamed` (a new name, no verify pass came
     * first): the store creates `into` without dropping anything and gets only
     * blocks that match the signed block list. If `into` exists after all (a
     * retry finds the copy a killed attempt left, or someone made it
     * meanwhile), or the block list does not read, the whole artifact is
     * verified first and the ordinary restore (which drops `into`) follows.
     * An activity of its own, so a worker of an older version never takes it
     * for a `restoreItem` that verified nothing.
     */
    async restoreNewItem(input: RestoreItemInput): Promise<{ seconds: number }> {
      return restoreOne(input, true);
    },

    /** For a dry run: exactly what restoring the artifact into `into` would change, from stores that can tell (a bucket). Read-only. */
    async previewRestore(input: { target: string; backupId: string; file: string; into: string; subPrefix?: string; allowUnsigned?: boolean }): Promise<string[]> {
      const store = openStore(d.config, input.target);
      return inActivity(
        store,
        async (ctx) => {
          if (!store.preview) return [];
          const { record } = await artifactOf(input.target, input.backupId, input.file, input.allowUnsigned);
          const plaintext = await readArtifact(await d.repo(), artifactKey(input.target, input.backupId, input.file), record, await loadIdentities(d.config.encryption), { signal: ctx.signal });
          return store.preview(ctx, itemOf(record), validateName('restore name', input.into), plaintext, input.subPrefix !== undefined ? { subPrefix: validateSubPrefix(input.subPrefix) } : {});
        },
        await d.scope(input.target),
      );
    },

    async dropItem(input: { target: string; name: string }): Promise<void> {
      const store = openStore(d.config, input.target);
      return inActivity(store, (ctx) => store.drop(ctx, validateName('name', input.name)), await d.scope(input.target));
    },

    /** Before anything is stopped or dropped: can this server take these items (e.g. extensions, the owner role)? Read-only. */
    async preflightRestore(input: { target: string; backupId: string; files: string[]; owner?: string; allowUnsigned?: boolean }): Promise<void> {
      const store = openStore(d.config, input.target);
      return inActivity(store, async (ctx) => {
        if (!store.preflight) return;
        const manifest = await readManifest(await d.repo(), input.target, input.backupId, d.trust(input.allowUnsigned));
        await store.preflight(ctx, manifest.artifacts.filter((a) => input.files.includes(a.file)).map(itemOf), input.owner ? { owner: input.owner } : {});
      });
    },

    /**
     * After a restore: the readiness URL answers and the configured queries
     * hold. For copies restored under other names (`copies`: item name -> copy),
     * only the queries of restored databases run, against the copies; the
     * readiness URL (the application's) is not asked. Read-only.
     */
    async sanityChecks(input: { target: string; copies?: Record<string, string> }): Promise<{ passed: string[] }> {
      const store = openStore(d.config, input.target);
      return inActivity(store, async (ctx) => {
        const checks = targetOf(d.config, input.target).checks;
        const passed: string[] = [];
        if (checks?.readyUrl && !input.copies) {
          await waitReady(checks.readyUrl, checks.readyTimeoutSeconds, ctx.signal);
          passed.push(`ready ${checks.readyUrl}`);
        }
        for (const q of checks?.sql ?? []) {
          if (!store.check) throw new LifeboatError('ConfigError', `target '${input.target}' (${store.kind}) has checks.sql, but ${store.kind} targets cannot run SQL checks`);
          let database = q.database;
          if (input.copies) {
            const copy = input.copies[q.database ?? store.drillName()];
            if (!copy) continue; // a database this restore did not copy: never check production instead
            database = copy;
          }
          if (!(await store.check(ctx, database, q.query))) {
            throw new LifeboatError('CheckFailed', `check on target '${input.target}'${database ? ` (${database})` : ''} did not hold after the restore: ${q.query}`);
          }
          passed.push(`${q.query}${database ? ` in ${database}` : ''}`);
        }
        return { passed };
      });
    },
  };
}
