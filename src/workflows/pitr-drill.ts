import { ApplicationFailure, CancellationScope, sleep, uuid4, workflowInfo } from '@temporalio/workflow';
import { markersOk } from '../domain/markers';
import { drillTargetTime, parseTargetTime, type PitrDrillInput, type PitrDrillResult } from '../domain/pitr';
import { on, quick as anyQueue, type Near } from './activities';
import { trackProgress } from './progress';
import { asCancellation, cancelledRun } from './cancel';
import { causeMessage } from './saga';
import { tagRun, withOutcome } from './visibility';

/**
 * The PITR drill, safe against production: seed marker batch A, note the
 * server's time T once A committed, wait, seed batch B, close the WAL segment
 * and wait until it is archived; then restore the latest backup into a
 * scratch data directory on the target's worker with `--type=time --target=T
 * --archive-mode=off`, start a temporary server on a free loopback port, and
 * prove every A marker is there and no B marker is. Records the restore
 * seconds and the precision (T minus the last replayed transaction). The
 * scratch copy is stopped and removed on every path, also after a worker died
 * in the middle (the retried activity and the cleanup here remove what it left).
 */
export async function pitrDrillWorkflow(input: PitrDrillInput): Promise<PitrDrillResult> {
  return withOutcome(() => pitrDrill(input));
}

async function pitrDrill(input: PitrDrillInput): Promise<PitrDrillResult> {
  const progress = trackProgress('setup');
  const startedAt = new Date().toISOString();
  const nonce = uuid4();
  const token = nonce.replace(/-/g, '').slice(0, 12);
  const before = `${nonce}/before`;
  const after = `${nonce}/after`;
  await anyQueue.pitrTarget({ target: input.target });
  const run = await anyQueue.describeRun({ targets: [input.target] });
  tagRun(run.searchAttributes, 'drill', run.targets);
  const ref = run.targets[0]!;
  const { quick, transfer } = on(ref);
  const target = input.target;
  let result: PitrDrillResult = { ok: false, target, nonce, targetTime: '', backup: '', markersBefore: { expected: 0, found: 0 }, markersAfter: { expected: 0, found: 0 }, restoreSeconds: 0, lastReplayed: null, precisionSeconds: null, failures: [] };
  let backupSeconds = 0;
  try {
    await transfer.pitrSetup({ target, check: true });
    let catalog = await quick.pitrCatalog({ target });
    if (catalog.backups.length === 0) {
      progress.set('backup', `${target}: no backup yet, taking a full one`);
      await transfer.pitrBackup({ target, type: 'full', token: workflowInfo().runId });
      catalog = await quick.pitrCatalog({ target });
    }
    const latest = catalog.backups.at(-1)!;
    backupSeconds = (Date.parse(latest.stoppedAt) - Date.parse(latest.startedAt)) / 1000;
    progress.set('seed', `${target}: batch A`);
    const a = await quick.pitrSeedBatch({ target, nonce: before });
    const t = parseTargetTime(drillTargetTime(a.committedBefore, latest));
    await sleep(`${Math.max(2, input.gapSeconds ?? 2)} seconds`);
    progress.set('seed', `${target}: batch B`);
    await quick.pitrSeedBatch({ target, nonce: after });
    progress.set('archive', `${target}: switch WAL and wait until it is archived`);
    await transfer.pitrSwitchWal({ target });
    progress.set('restore', `${target}: scratch copy to ${t.iso}`);
    const r = await transfer.pitrDrillRestore({ target, token, targetTime: t.pg, before, after });
    const replayedMs = r.lastReplayed ? Date.parse(r.lastReplayed) : undefined;
    const failures: string[] = [];
    if (!markersOk(r.before)) failures.push(`${target}: ${r.before.found}/${r.before.expected} markers written before ${t.iso} came back (missing ${r.before.missing.join(', ') || 'none'})`);
    if (r.after.found > 0) failures.push(`${target}: ${r.after.found} marker(s) written after ${t.iso} came back: the restore went past its target time`);
    result = {
      ok: failures.length === 0,
      target,
      nonce,
      targetTime: t.iso,
      backup: latest.label,
      markersBefore: { expected: r.before.expected, found: r.before.found },
      markersAfter: { expected: r.after.expected, found: r.after.found },
      restoreSeconds: r.seconds,
      lastReplayed: r.lastReplayed,
      precisionSeconds: replayedMs === undefined ? null : Math.round(t.ms - replayedMs) / 1000,
      failures,
    };
    await quick.pitrCatalog({ target });
  } catch (err) {
    const cancelled = cancelledRun(err);
    result = { ...result, ok: false, failures: [cancelled ? 'cancelled' : `${target}: ${causeMessage(err)}`] };
    if (cancelled) {
      await finish(result, startedAt, backupSeconds, token, ref);
      throw asCancellation(err);
    }
  }
  await finish(result, startedAt, backupSeconds, token, ref);
  progress.set('done');
  if (!result.ok) throw ApplicationFailure.create({ type: 'MarkersMissing', nonRetryable: true, message: `PITR drill failed: ${result.failures.join('; ')}`, details: [result] });
  return result;
}

/** Removes the scratch copy (whatever a dead attempt left) and keeps the result for `lifeboat report`; runs even when cancelled. */
async function finish(r: PitrDrillResult, startedAt: string, backupSeconds: number, token: string, near: Near): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    await on(near).transfer.pitrScratchCleanup({ target: r.target, token }).catch(() => undefined);
    const markers = { expected: r.markersBefore.expected, found: r.markersBefore.found, missing: [], unexpected: r.markersAfter.found };
    await anyQueue.recordDrill({
      record: {
        ok: r.ok,
        nonce: r.nonce,
        mode: 'scratch',
        backupId: r.backup,
        stores: r.targetTime ? [{ target: r.target, kind: 'postgres', markers, backupSeconds, restoreSeconds: r.restoreSeconds, artifactBytes: 0 }] : [],
        failures: r.failures,
        workflowId: workflowInfo().workflowId,
        startedAt,
        finishedAt: new Date().toISOString(),
        pitr: { targetTime: r.targetTime, lastReplayed: r.lastReplayed, precisionSeconds: r.precisionSeconds, markersAfter: r.markersAfter },
      } as Parameters<typeof anyQueue.recordDrill>[0]['record'],
    });
  });
}
