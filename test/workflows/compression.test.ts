import { randomBytes } from 'node:crypto';
import type { Config } from '../../src/config';
import type { DrillResult, RestoreResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { readManifest } from '../../src/repo/catalog';
import { stackConfig, trustOf, uniq } from '../helpers/env';
import { countRows, dropDatabase } from '../helpers/pg';
import { startHarness } from '../helpers/temporal';

/**
 * Every kind of the local stack round-trips with compression on and off, and
 * a backup made without compression (as every backup before it) restores with
 * a worker that compresses.
 */
jest.setTimeout(300_000);
const base = stackConfig();
const run = uniq('compression');
const config = (compression: Config['compression']): Config => ({
  ...base,
  compression,
  temporal: { ...base.temporal, taskQueue: `lifeboat-test-${run}` },
  repository: base.repository.kind === 's3' ? { ...base.repository, prefix: `test/${run}` } : base.repository,
});
const targets = [...base.targets.keys()];

async function drill(c: Config): Promise<DrillResult> {
  const h = await startHarness(c);
  try {
    return await h.run<DrillResult>('drillWorkflow', { mode: 'scratch' });
  } finally {
    await h.stop();
  }
}

test('with compression off, every kind round-trips and its artifacts are stored as the store wrote them', async () => {
  const c = config({ algorithm: 'none', level: 0 });
  const r = await drill(c);
  expect(r.stores.map((s) => [s.target, s.markers.found === s.markers.expected])).toEqual(targets.map((t) => [t, true]));
  const repo = await openRepository(c);
  for (const t of targets) {
    const m = await readManifest(repo, t, r.backupId, trustOf(c));
    expect(m.artifacts.every((a) => a.compression === undefined && !a.file.includes('.zst'))).toBe(true);
  }

  // A backup without compression (like every one before compression existed) restores with a worker that compresses.
  const zstd = config({ algorithm: 'zstd', level: 3 });
  const h = await startHarness(zstd);
  try {
    const app = base.targets.get('app-pg')!.settings as { databases: string[] };
    const copy = `lifeboat_old_${randomBytes(3).toString('hex')}`;
    const restored = await h.run<RestoreResult>('restoreWorkflow', { backupId: r.backupId, targets: ['app-pg'], yes: true, only: { 'app-pg': [app.databases[0]!] }, into: { 'app-pg': { [app.databases[0]!]: copy } } });
    expect(restored.targets[0]!.restored).toEqual([{ name: app.databases[0], into: copy }]);
    expect(await countRows(base, copy, 'lifeboat_drill_markers')).toBeGreaterThan(0);
    await dropDatabase(base, copy);
  } finally {
    await h.stop();
  }
});

test('with zstd, every kind round-trips and the artifacts of streams that are not compressed already say so', async () => {
  const c = config({ algorithm: 'zstd', level: 3 });
  const r = await drill(c);
  expect(r.stores.map((s) => [s.target, s.markers.found === s.markers.expected])).toEqual(targets.map((t) => [t, true]));
  const repo = await openRepository(c);
  for (const t of targets) {
    const m = await readManifest(repo, t, r.backupId, trustOf(c));
    for (const a of m.artifacts) {
      if (m.kind === 'vault') expect(a.compression).toBeUndefined(); // a gzip'd snapshot is not compressed again
      else expect({ file: a.file, compression: a.compression }).toEqual({ file: expect.stringMatching(/\.zst\.age$/), compression: 'zstd' });
    }
  }
});
