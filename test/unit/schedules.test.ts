import { parseConfig } from '../../src/config/load';
import { calendarToCron, DEFAULT_SCHEDULES, desiredSchedules, isCron, normalizeCron, resolveScheduleId, type CalendarRange } from '../../src/domain/schedules';

const targets = [
  { name: 'app-pg', kind: 'postgres' },
  { name: 'events-ch', kind: 'clickhouse' },
  { name: 'billing-pg', kind: 'postgres' },
  { name: 'bundles', kind: 'bucket' },
  { name: 'audit-pg', kind: 'postgres' },
  { name: 'logs-ch', kind: 'clickhouse' },
  { name: 'cache', kind: 'redis' },
];

describe('desired schedules', () => {
  it('staggers nightly backups by kind: postgres 02:00, clickhouse 02:30, bucket 03:00, +10 min per target of a kind', () => {
    const s = desiredSchedules(targets);
    const crons = Object.fromEntries(s.filter((x) => x.kind === 'backup').map((x) => [x.target, x.cron]));
    expect(crons).toEqual({
      'app-pg': '0 2 * * *',
      'billing-pg': '10 2 * * *',
      'audit-pg': '20 2 * * *',
      'events-ch': '30 2 * * *',
      'logs-ch': '40 2 * * *',
      bundles: '0 3 * * *',
      cache: '30 3 * * *',
    });
  });

  it('names and shapes each schedule: backup per target, drill, prune', () => {
    const s = desiredSchedules([{ name: 'app-pg', kind: 'postgres' }]);
    expect(s.map((x) => x.id)).toEqual(['lifeboat-backup-app-pg', 'lifeboat-drill', 'lifeboat-prune']);
    expect(s[0]).toMatchObject({
      workflowType: 'backupWorkflow',
      args: [{ targets: ['app-pg'] }],
      workflowIdPrefix: 'backup/app-pg/scheduled',
      timezone: 'UTC',
      memo: { lifeboat: { idPrefix: 'lifeboat', kind: 'backup', target: 'app-pg' } },
    });
    expect(s[1]).toMatchObject({ workflowType: 'drillWorkflow', args: [{ mode: 'scratch' }], cron: '0 4 * * *', workflowIdPrefix: 'drill/scheduled' });
    expect(s[2]).toMatchObject({ workflowType: 'pruneWorkflow', args: [{}], cron: '0 5 * * *', workflowIdPrefix: 'prune/scheduled' });
  });

  it('takes overrides: a target cron, no schedule (false), drill mode, time zone, id prefix', () => {
    const yaml = `repository: { kind: local, path: /x }
encryption: none
targets:
${targets.map((t) => `  ${t.name}: { kind: ${t.kind === 'redis' ? 'bucket' : t.kind}, ${t.kind === 'bucket' || t.kind === 'redis' ? 'bucket: b-1' : 'user: u, databases: [d]'} }`).join('\n')}
schedules: { idPrefix: staging, timezone: Europe/Berlin, backups: { app-pg: "45 1 * * *", billing-pg: false }, drill: "0 6 * * 1", drillMode: in-place, prune: "off" }
`;
    const settings = parseConfig(yaml, '/l.yaml').schedules!;
    const s = desiredSchedules(targets, settings);
    const byId = Object.fromEntries(s.map((x) => [x.id, x]));
    expect(byId['staging-backup-app-pg']!.cron).toBe('45 1 * * *');
    expect(byId['staging-backup-billing-pg']).toBeUndefined();
    // A target without a schedule keeps its slot: the others do not move.
    expect(byId['staging-backup-audit-pg']!.cron).toBe('20 2 * * *');
    expect(byId['staging-drill']).toMatchObject({ cron: '0 6 * * 1', args: [{ mode: 'in-place' }], timezone: 'Europe/Berlin', workflowIdPrefix: 'drill/scheduled-staging' });
    expect(byId['staging-prune']).toBeUndefined();
    expect(byId['staging-backup-app-pg']!.workflowIdPrefix).toBe('backup/app-pg/scheduled-staging');
  });

  it('wraps past midnight', () => {
    const many = Array.from({ length: 140 }, (_, i) => ({ name: `pg${i}`, kind: 'postgres' }));
    expect(desiredSchedules(many, DEFAULT_SCHEDULES).find((x) => x.target === 'pg132')!.cron).toBe('0 0 * * *');
  });

  it('resolves short schedule ids', () => {
    expect(resolveScheduleId('lifeboat', 'backup-app-pg')).toBe('lifeboat-backup-app-pg');
    expect(resolveScheduleId('lifeboat', 'lifeboat-drill')).toBe('lifeboat-drill');
  });
});

describe('the schedules config section', () => {
  const base = `
repository: { kind: local, path: ./backups }
encryption: none
targets:
  app-pg: { kind: postgres, user: u, databases: [app] }
`;

  it('defaults when omitted', () => {
    expect(parseConfig(base, '/l.yaml').schedules).toEqual(DEFAULT_SCHEDULES);
  });

  it('parses the documented section', () => {
    const c = parseConfig(`${base}schedules:\n  timezone: UTC\n  backups:\n    app-pg: "0  2 * * *"\n  drill: "0 4 * * *"\n  prune: "0 5 * * *"\n  enabled: false\n`, '/l.yaml');
    expect(c.schedules).toEqual({ ...DEFAULT_SCHEDULES, backups: { 'app-pg': '0 2 * * *' }, enabled: false });
  });

  it.each([
    ['  backups: { nope: "0 2 * * *" }', /'schedules.backups.nope' names no configured target; targets: app-pg/],
    ['  drill: "every night"', /'schedules.drill' must be a cron expression/],
    ['  prune: "CRON_TZ=UTC 0 5 * * *"', /'schedules.prune' must be a cron expression/],
    ['  timezone: Mars/Olympus', /'schedules.timezone' must be an IANA time zone/],
    ['  idPrefix: "a/b"', /'schedules.idPrefix' must be 1-40 letters/],
    ['  drillMode: yolo', /'schedules.drillMode' must be one of 'scratch', 'in-place', not 'yolo'/],
    ['  nightly: true', /'schedules' has unknown setting 'nightly'; known: idPrefix/],
    ['  drilMode: scratch', /'schedules' has unknown setting 'drilMode' \(did you mean 'drillMode'\?\)/],
  ])('refuses %s', (line, message) => {
    expect(() => parseConfig(`${base}schedules:\n${line}\n`, '/l.yaml')).toThrow(message);
  });

  it('knows a cron expression when it sees one', () => {
    expect(['0 2 * * *', '*/15 * * * *', '0 2 * * MON-FRI', '0 0 2 * * * 2030', '@daily', '@every 1h'].every(isCron)).toBe(true);
    expect(['', '0 2 * *', 'TZ=UTC 0 2 * * *', '0 2 * * * # nightly'].some(isCron)).toBe(false);
  });
});

describe('cron as Temporal describes it', () => {
  const r = (start: number | string, end = start, step = 1): CalendarRange => ({ start, end, step });
  const every = { dayOfMonth: [r(1, 31)], month: [r('JANUARY', 'DECEMBER')], year: [], dayOfWeek: [r('SUNDAY', 'SATURDAY')] };

  it('renders a described calendar back to the cron it came from', () => {
    expect(calendarToCron({ second: [r(0)], minute: [r(0)], hour: [r(2)], ...every })).toBe('0 2 * * *');
    expect(calendarToCron({ second: [r(0)], minute: [r(0, 59, 15)], hour: [r(0, 23)], ...every })).toBe('*/15 * * * *');
    expect(calendarToCron({ second: [r(0)], minute: [r(30)], hour: [r(1), r(13)], ...every, dayOfWeek: [r('MONDAY', 'FRIDAY')] })).toBe('30 1,13 * * 1-5');
    expect(calendarToCron({ second: [r(5)], minute: [r(0)], hour: [r(2)], ...every, year: [r(2030)] })).toBe('5 0 2 * * * 2030');
  });

  it('normalises spellings that mean the same', () => {
    expect(normalizeCron('@daily')).toBe('0 0 * * *');
    expect(normalizeCron(' 0  2 * JAN mon-fri ')).toBe('0 2 * 1 1-5');
  });
});
