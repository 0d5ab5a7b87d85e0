import { reportTable } from '../../src/cli/report';
import type { DrillRecord, DrillStoreResult } from '../../src/domain/plan';
import { buildReport, formatAge, type NewestBackup } from '../../src/domain/rpo';

const now = new Date('2026-11-23T12:00:00Z');
const targets = [
  { name: 'app-pg', kind: 'postgres' },
  { name: 'events-ch', kind: 'clickhouse' },
  { name: 'bundles', kind: 'bucket' },
];

function store(target: string, kind: string, restoreSeconds: number, backupSeconds: number, found = 137): DrillStoreResult {
  return { target, kind, markers: { expected: 137, found, missing: found < 137 ? [1] : [], unexpected: 0 }, backupSeconds, restoreSeconds, artifactBytes: 1000 };
}

function drill(day: number, stores: DrillStoreResult[], failures: string[] = []): DrillRecord {
  const at = `2026-11-${String(day).padStart(2, '0')}T04:00:00.000Z`;
  return {
    ok: failures.length === 0,
    nonce: `nonce-${day}`,
    mode: 'scratch',
    backupId: `202611${String(day).padStart(2, '0')}T040000Z-beef`,
    stores,
    failures,
    workflowId: `drill/scheduled-${day}`,
    startedAt: at,
    finishedAt: at.replace('04:00:00', '04:05:00'),
  };
}

const newest = new Map<string, NewestBackup>([
  ['app-pg', { backupId: '20261123T020000Z-7f3a', finishedAt: '2026-11-23T02:01:30.000Z' }],
  ['events-ch', { backupId: '20261122T023000Z-0b1c', finishedAt: '2026-11-22T02:40:00.000Z' }],
]);

describe('RPO/RTO report', () => {
  const drills = [
    drill(20, [store('app-pg', 'postgres', 40, 10), store('events-ch', 'clickhouse', 90, 30)]),
    drill(23, [store('app-pg', 'postgres', 12, 5), store('events-ch', 'clickhouse', 60, 20, 100)], ['events-ch: 100/137 markers came back; missing 1, …']),
    drill(21, [store('app-pg', 'postgres', 25, 50)]),
  ];
  const r = buildReport({ now, targets, newest, drills, last: 10 });
  const [pg, ch, bundles] = r.targets;

  it('RPO is the age of the newest complete backup; never when there is none', () => {
    expect(pg).toMatchObject({ lastBackup: { backupId: '20261123T020000Z-7f3a' }, rpoSeconds: 9 * 3600 + 58 * 60 + 30 });
    expect(ch!.rpoSeconds).toBe(33 * 3600 + 20 * 60);
    expect(bundles).toMatchObject({ lastBackup: null, rpoSeconds: null, lastDrill: null, drills: 0, restoreSeconds: { latest: null, worst: null } });
  });

  it('restore and backup seconds: the newest drill, and the worst of those considered', () => {
    expect(pg).toMatchObject({ drills: 3, restoreSeconds: { latest: 12, worst: 40 }, backupSeconds: { latest: 5, worst: 50 } });
    expect(ch).toMatchObject({ drills: 2, restoreSeconds: { latest: 60, worst: 90 }, backupSeconds: { latest: 20, worst: 30 } });
  });

  it("the last drill's outcome is per target: one store failing does not fail the other", () => {
    expect(pg!.lastDrill).toMatchObject({ workflowId: 'drill/scheduled-23', ok: true, failures: [] });
    expect(ch!.lastDrill).toMatchObject({ workflowId: 'drill/scheduled-23', ok: false, failures: ['events-ch: 100/137 markers came back; missing 1, …'] });
  });

  it('--last N limits the drills considered to the newest N', () => {
    const two = buildReport({ now, targets, newest, drills, last: 2 });
    expect(two.drillsConsidered).toBe(2);
    expect(two.targets[0]).toMatchObject({ drills: 2, restoreSeconds: { latest: 12, worst: 25 }, backupSeconds: { latest: 5, worst: 50 } });
  });

  it('a drill that failed before measuring any store shows as the last drill of every target, its timings do not count', () => {
    const broken = drill(24, [], ['backup of app-pg failed: connection refused']);
    const x = buildReport({ now: new Date('2026-11-24T12:00:00Z'), targets, newest, drills: [...drills, broken], last: 10 });
    expect(x.targets[0]).toMatchObject({ lastDrill: { ok: false, failures: ['backup of app-pg failed: connection refused'] }, restoreSeconds: { latest: 12, worst: 40 } });
    expect(x.targets[2]!.lastDrill).toMatchObject({ ok: false });
  });

  it('prints an aligned table and says why a drill failed', () => {
    const lines = reportTable(r);
    expect(lines[0]).toMatch(/^TARGET\s+KIND\s+LAST BACKUP\s+RPO\s+LAST DRILL\s+RESTORE s latest\/worst\s+BACKUP s latest\/worst$/);
    const col = (h: string) => lines[0]!.indexOf(h);
    expect(lines[1]!.slice(col('RPO')).startsWith('9h58m')).toBe(true);
    expect(lines[1]!.slice(col('RESTORE')).startsWith('12.0 / 40.0')).toBe(true);
    expect(lines[2]!.slice(col('LAST DRILL')).startsWith('FAILED 7h55m ago')).toBe(true);
    expect(lines[3]).toMatch(/^bundles\s+bucket\s+never\s+never\s+never\s+-\s+-$/);
    expect(lines).toContain('events-ch: last drill drill/scheduled-23 failed: events-ch: 100/137 markers came back; missing 1, …');
  });

  it('formats ages for people', () => {
    expect([null, 42, 425, 11520, 187200].map(formatAge)).toEqual(['never', '42s', '7m05s', '3h12m', '2d04h']);
  });
});
