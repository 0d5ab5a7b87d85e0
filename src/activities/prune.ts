import type { TargetPrunePlan } from '../domain/plan';
import { applyRetention } from '../domain/retention';
import { deleteBackup, listBackups, listIncomplete, loadManifest, readVerification } from '../repo/catalog';
import { openStore } from '../stores';
import { messageOf } from '../errors';
import { inActivity } from './context';
import type { Deps } from './deps';

/** A backup folder without a manifest this old is an interrupted backup, not a running one. */
const INCOMPLETE_AFTER_MS = 24 * 3600 * 1000;

/** Retention's activities. */
export function pruneActivities(d: Deps) {
  return {
    /**
     * Applies the retention policy to a target's backups: what to keep and
     * why. Only backups whose manifest reads and is authentic count: a damaged
     * or forged one is reported and left alone, and never takes the place of a
     * good one (it is not counted as "the newest"). Read-only.
     */
    async planPrune(input: { target: string; allowUnsigned?: boolean }): Promise<TargetPrunePlan> {
      return inActivity(null, async () => {
        const r = await d.repo();
        const trust = d.trust(input.allowUnsigned);
        const facts = [];
        const damaged: Array<{ backupId: string; why: string }> = [];
        for (const b of await listBackups(r, [input.target])) {
          try {
            const { signature } = await loadManifest(r, input.target, b.backupId, trust.publicKeys);
            if (signature.state === 'bad') throw new Error(`not authentic: ${signature.why}`);
            if (signature.state !== 'signed' && !trust.allowUnsigned) throw new Error(signature.state === 'unchecked' ? 'its signature cannot be checked: the config has no signing.publicKeys' : 'not signed (prune --allow-unsigned counts unsigned backups)');
            facts.push({ backupId: b.backupId, verified: (await readVerification(r, input.target, b.backupId))?.ok === true });
          } catch (err) {
            damaged.push({ backupId: b.backupId, why: messageOf(err) });
          }
        }
        const incomplete = await listIncomplete(r, input.target, new Date(Date.now() - INCOMPLETE_AFTER_MS));
        return { target: input.target, decisions: applyRetention(facts, d.config.retention), incomplete, damaged };
      });
    },

    /** Deletes one backup, manifest first; skipped while Object Lock protects it. Idempotent. */
    async deleteBackup(input: { target: string; backupId: string }): Promise<{ deleted: boolean; lockedUntil?: string }> {
      return inActivity(null, async () => {
        const r = await deleteBackup(await d.repo(), input.target, input.backupId);
        return { deleted: r.deleted, ...(r.lockedUntil ? { lockedUntil: r.lockedUntil.toISOString() } : {}) };
      });
    },

    /**
     * After a prune, while the target is held: stored objects no backup
     * references any more (a bucket's pool), and the open multipart uploads
     * that interrupted or cancelled backups left. Idempotent.
     */
    async collectGarbage(input: { target: string }): Promise<{ deleted: number; locked: number; uploads: number }> {
      const store = openStore(d.config, input.target);
      return inActivity(
        store,
        async (ctx) => {
          const uploads = (await (await d.repo()).abortUploads?.(input.target)) ?? 0;
          const pool = store.collectGarbage ? await store.collectGarbage(ctx) : { deleted: 0, locked: 0 };
          return { ...pool, uploads };
        },
        await d.scope(input.target),
      );
    },
  };
}
