import { applyRetention, DEFAULT_RETENTION, type BackupFacts } from '../../src/domain/retention';

/** Backups at the given UTC times, e.g. '2026-11-23T02:00:00'. */
function at(...times: string[]): BackupFacts[] {
  return times.map((t, i) => ({ backupId: `${t.replace(/[-:]/g, '')}Z-${(0xa000 + i).toString(16)}`, verified: false }));
}

function kept(backups: BackupFacts[], policy = DEFAULT_RETENTION): string[] {
  return applyRetention(backups, policy)
    .filter((d) => d.keep)
    .map((d) => d.backupId.slice(0, 15));
}

describe('grandfather-father-son retention', () => {
  it('keeps the newest of each of the last 7 days and of the last 4 ISO weeks', () => {
    // Two backups a day for 40 days, from 2026-10-01.
    const times: string[] = [];
    for (let d = 0; d < 40; d++) {
      const day = new Date(Date.UTC(2026, 9, 1 + d)).toISOString().slice(0, 10);
      times.push(`${day}T02:00:00`, `${day}T14:00:00`);
    }
    const k = kept(at(...times));
    // 7 daily (Nov 3..Nov 9 at 14:00). Weekly: W46 holds only Monday Nov 9 and W45 ends on Sunday Nov 8,
    // both already kept as daily; W44 ends on Nov 1 and W43 on Oct 25.
    expect(k).toEqual([
      '20261109T140000', '20261108T140000', '20261107T140000', '20261106T140000', '20261105T140000', '20261104T140000', '20261103T140000',
      '20261101T140000', '20261025T140000',
    ]);
  });

  it('counts periods that have backups, not calendar days: a gap does not delete everything', () => {
    const k = kept(at('2026-01-01T02:00:00', '2026-03-01T02:00:00', '2026-06-01T02:00:00'), { keepLast: 0, daily: 2, weekly: 0, monthly: 0 });
    expect(k).toEqual(['20260601T020000', '20260301T020000']);
  });

  it('keeps the last N whatever the periods, and says why each is kept', () => {
    const d = applyRetention(at('2026-11-23T01:00:00', '2026-11-23T02:00:00', '2026-11-23T03:00:00'), { keepLast: 2, daily: 1, weekly: 1, monthly: 1 });
    expect(d.map((x) => [x.backupId.slice(0, 15), x.keep, x.reasons])).toEqual([
      ['20261123T030000', true, ['last', 'daily 2026-11-23', 'weekly 2026-W48', 'monthly 2026-11']],
      ['20261123T020000', true, ['last']],
      ['20261123T010000', false, []],
    ]);
  });

  it('never deletes the newest verified backup', () => {
    const b = at('2026-11-20T02:00:00', '2026-11-21T02:00:00', '2026-11-22T02:00:00');
    b[0]!.verified = true;
    const d = applyRetention(b, { keepLast: 1, daily: 0, weekly: 0, monthly: 0 });
    expect(d.find((x) => x.backupId === b[0]!.backupId)).toMatchObject({ keep: true, reasons: ['newest verified'] });
    expect(d.filter((x) => x.keep)).toHaveLength(2);
  });

  it('computes ISO weeks across a year end', () => {
    const d = applyRetention(at('2026-12-31T02:00:00', '2027-01-03T02:00:00', '2027-01-04T02:00:00'), { keepLast: 0, daily: 0, weekly: 3, monthly: 0 });
    expect(d.map((x) => x.reasons)).toEqual([['weekly 2027-W01'], ['weekly 2026-W53'], []]);
  });
});
