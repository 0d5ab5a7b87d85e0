import { parseConfig } from '../../src/config/load';
import { backupFor, drillTargetTime, outsideWindow, parseTargetTime, recoverableWindow, walSegment, type PitrBackup } from '../../src/domain/pitr';
import { desiredSchedules, PITR_DEFAULTS } from '../../src/domain/schedules';
import { renderConfig, repoPath } from '../../src/stores/postgres/pitr/conf';
import { parseInfo } from '../../src/stores/postgres/pitr/info';
import { classify, progressPercent } from '../../src/stores/postgres/pitr/run';
import { parsePostgresSettings } from '../../src/stores/postgres/settings';
import { LifeboatError } from '../../src/errors';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const backup = (label: string, type: PitrBackup['type'], stoppedAt: string): PitrBackup => ({
  label,
  type,
  startedAt: stoppedAt,
  stoppedAt,
  databaseBytes: 1,
  repositoryBytes: 1,
  prior: null,
  walStart: '',
  walStop: '',
  error: false,
  annotations: {},
});

describe('target times', () => {
  it.each([
    ['2026-12-01T10:15:00Z', '2026-12-01 10:15:00.000000+00'],
    ['2026-12-01 12:15:00.5+02:00', '2026-12-01 10:15:00.500000+00'],
    ['2026-12-01T05:15:00.123456-0500', '2026-12-01 10:15:00.123456+00'],
    ['2026-12-01T10:15:00+00', '2026-12-01 10:15:00.000000+00'],
  ])('%s is %s in UTC, to the microsecond', (given, pg) => {
    expect(parseTargetTime(given).pg).toBe(pg);
  });

  it('refuses a time without a zone, or not a time', () => {
    expect(() => parseTargetTime('2026-12-01 10:15:00')).toThrow(/with a zone/);
    expect(() => parseTargetTime('yesterday')).toThrow(/with a zone/);
    expect(() => parseTargetTime('2026-02-30T10:00:00Z')).toThrow(/not a valid time/);
  });
});

describe('the recoverable window', () => {
  const backups = [backup('F1', 'full', '2026-12-01T01:00:00.000Z'), backup('F1_D1', 'diff', '2026-12-02T01:00:00.000Z')];

  it('runs from the second after the oldest backup ended to the last archived segment in the repository', () => {
    const w = recoverableWindow(backups, { lastArchivedTime: '2026-12-02T09:00:00.000Z', inRepository: true })!;
    // pgBackRest compares whole seconds and wants the backup's stop strictly earlier.
    expect(w).toEqual({ earliest: '2026-12-01T01:00:01.000Z', latest: '2026-12-02T09:00:00.000Z', latestFrom: 'archiver' });
    expect(outsideWindow(Date.parse('2026-12-02T08:00:00Z'), w)).toBeUndefined();
    expect(outsideWindow(Date.parse('2026-12-01T01:00:01Z'), w)).toBeUndefined();
    expect(outsideWindow(Date.parse('2026-12-01T01:00:00.900Z'), w)).toMatch(/not in a later second than the end of the oldest backup/);
    expect(outsideWindow(Date.parse('2026-12-01T00:59:59Z'), w)).toMatch(/not in a later second than the end of the oldest backup/);
    expect(outsideWindow(Date.parse('2026-12-02T09:00:01Z'), w)).toMatch(/after the last WAL segment archived/);
  });

  it('ends at the newest backup when the archiver is unknown or its segment is not in the repository', () => {
    expect(recoverableWindow(backups, { lastArchivedTime: '2026-12-02T09:00:00.000Z', inRepository: false })!.latest).toBe('2026-12-02T01:00:00.000Z');
    expect(recoverableWindow(backups, undefined)!.latestFrom).toBe('backup');
    expect(recoverableWindow([], undefined)).toBeNull();
  });

  it('puts the drill target after batch A and in a later second than the backup it restores from', () => {
    const full = backup('F', 'full', '2026-12-01T15:31:21.000Z');
    expect(drillTargetTime('2026-12-01T15:31:25.123456Z', full)).toBe('2026-12-01T15:31:25.123456Z');
    // Batch A committed in the second the backup ended: pgBackRest would refuse that time.
    expect(drillTargetTime('2026-12-01T15:31:21.648219Z', full)).toBe('2026-12-01T15:31:22.000Z');
    expect(backupFor([full], Date.parse(drillTargetTime('2026-12-01T15:31:21.648219Z', full)))!.label).toBe('F');
  });

  it('restores from the newest backup that ended before the target', () => {
    expect(backupFor(backups, Date.parse('2026-12-01T12:00:00Z'))!.label).toBe('F1');
    expect(backupFor(backups, Date.parse('2026-12-02T12:00:00Z'))!.label).toBe('F1_D1');
    expect(backupFor(backups, undefined)!.label).toBe('F1_D1');
    // Within the second F1_D1 ended, pgBackRest still takes F1.
    expect(backupFor(backups, Date.parse('2026-12-02T01:00:00.500Z'))!.label).toBe('F1');
    expect(backupFor(backups, Date.parse('2026-12-02T01:00:01Z'))!.label).toBe('F1_D1');
    expect(backupFor(backups, Date.parse('2026-12-01T01:00:00.999Z'))).toBeUndefined();
  });

  it('reads segment names out of archiver file names', () => {
    expect(walSegment('000000010000000000000005.00000028.backup')).toBe('000000010000000000000005');
    expect(walSegment('00000002.history')).toBeUndefined();
  });
});

describe('pgBackRest output', () => {
  it('reads the percentage of a detail line', () => {
    expect(progressPercent('2026-12-01 10:51:40.408 P01 DETAIL: backup file /data/base/5/16388 (19.5MB, 47.02%) checksum 1b58')).toBe(47.02);
    expect(progressPercent('P01 DETAIL: restore file /data/global/pg_control (8KB, 100.00%) checksum x')).toBe(100);
    expect(progressPercent('P00   INFO: backup start archive = 000000010000000000000004')).toBeUndefined();
  });

  it('makes a held lock a retryable wait and a rejected configuration permanent', () => {
    const lock = classify('app-pg', new LifeboatError('ToolFailed', "pgbackrest exited with code 50: ERROR: [050]: unable to acquire lock on file '/x/app-pg-backup.lock'", false)) as LifeboatError;
    expect(lock).toMatchObject({ type: 'PitrLockBusy', permanent: false });
    const tls = classify('app-pg', new LifeboatError('ToolFailed', "ERROR: [095]: unable to find hostname '127.0.0.1' in certificate common name or subject alternative names", false)) as LifeboatError;
    expect(tls).toMatchObject({ type: 'ConfigError', permanent: true });
    const none = classify('app-pg', new LifeboatError('ToolFailed', "pgbackrest exited with code 75: ERROR: [075]: unable to find backup set with stop time less than '2026-12-01 15:31:21.648219+00'", false)) as LifeboatError;
    expect(none).toMatchObject({ type: 'OutsideWindow', permanent: true });
  });

  it('parses info --output=json: backups, archive, lock', () => {
    const json = JSON.stringify([
      {
        name: 'app-pg',
        status: { code: 0, message: 'ok', lock: { backup: { held: false } } },
        db: [{ id: 1, version: '15' }],
        archive: [{ id: '15-1', min: '000000010000000000000001', max: '000000010000000000000009' }],
        backup: [
          {
            label: '20261201-105138F',
            type: 'full',
            prior: null,
            error: false,
            annotation: { 'lifeboat-run': 'r1' },
            archive: { start: '000000010000000000000005', stop: '000000010000000000000005' },
            info: { size: 43554527, repository: { delta: 17587856, size: 17587856 } },
            timestamp: { start: 1796122310, stop: 1796122315 },
          },
        ],
      },
    ]);
    const i = parseInfo(json, 'app-pg');
    expect(i.archive).toEqual({ id: '15-1', min: '000000010000000000000001', max: '000000010000000000000009' });
    expect(i.backups[0]).toMatchObject({ label: '20261201-105138F', type: 'full', databaseBytes: 43554527, repositoryBytes: 17587856, annotations: { 'lifeboat-run': 'r1' } });
    expect(i.backups[0]!.stoppedAt).toBe(new Date(1796122315_000).toISOString());
    expect(parseInfo(json, 'other').statusCode).toBe(1);
  });
});

describe('config and pgbackrest.conf', () => {
  const yaml = (pitr: string) => `
repository: { kind: s3, endpoint: 'http://127.0.0.1:19000', bucket: lifeboat, prefix: backups, accessKeyId: { file: ./ak }, secretAccessKey: { file: ./sk } }
encryption: none
retention: { daily: 7, weekly: 4 }
targets:
  app-pg:
    kind: postgres
    user: lifeboat
    password: { file: ./pg }
    databases: [app]
    pitr: ${pitr}
`;

  it('names a typo in the pitr section', () => {
    expect(() => parseConfig(yaml('{ dataDir: /d, cipherPassphrase: { file: ./c }, proccessMax: 2 }'), '/etc/l.yaml')).toThrow(/'targets.app-pg.pitr' has unknown setting 'proccessMax' \(did you mean 'processMax'\?\)/);
    expect(() => parseConfig(yaml('{ dataDir: /d, cipherPassphrase: hunter2 }'), '/etc/l.yaml')).toThrow(/'targets.app-pg.pitr.cipherPassphrase' must reference the secret/);
    expect(() => parseConfig(yaml('{ dataDir: /d, cipherPassphrase: { file: ./c }, schedules: { full: "every sunday" } }'), '/etc/l.yaml')).toThrow(/'targets.app-pg.pitr.schedules.full' must be a cron expression/);
  });

  it('writes every secret into the file, none elsewhere, and refuses a plain-http endpoint with the fix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lb-pitr-unit-'));
    for (const [f, v] of [['ak', 'AKIAEXAMPLE'], ['sk', 'secret-key'], ['pg', 'pw'], ['c', 'pass phrase']]) await writeFile(join(dir, f!), v!, { mode: 0o600 });
    const file = join(dir, 'lifeboat.yaml');
    const config = parseConfig(yaml('{ dataDir: /srv/pg, cipherPassphrase: { file: ./c }, s3Endpoint: "https://127.0.0.1:19443", caFile: ./ca.crt }'), file);
    const t = config.targets.get('app-pg')!;
    const pg = parsePostgresSettings(file, t);
    const spec = { target: 'app-pg', pg, pitr: pg.pitr!, repository: config.repository, retention: config.retention };
    const text = await renderConfig(spec);
    expect(text).toContain('repo1-s3-endpoint=127.0.0.1\nrepo1-storage-port=19443');
    expect(text).toContain('repo1-s3-key=AKIAEXAMPLE');
    expect(text).toContain('repo1-cipher-pass=pass phrase');
    expect(text).toContain('repo1-cipher-type=aes-256-cbc');
    expect(text).toContain('repo1-retention-full=4\nrepo1-retention-diff=7');
    expect(text).toContain(`repo1-path=${repoPath(spec)}`);
    expect(repoPath(spec)).toBe('/backups/pitr/app-pg');
    expect(text).toContain('[app-pg]\npg1-path=/srv/pg');
    const plain = parseConfig(yaml('{ dataDir: /srv/pg, cipherPassphrase: { file: ./c } }'), file);
    const pg2 = parsePostgresSettings(file, plain.targets.get('app-pg')!);
    await expect(renderConfig({ ...spec, pg: pg2, pitr: pg2.pitr! })).rejects.toThrow(/only over https.*set targets\.app-pg\.pitr\.s3Endpoint/);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('PITR schedules', () => {
  it('a weekly full, a daily diff and a nightly PITR drill per pitr target, staggered when on the defaults', () => {
    const s = desiredSchedules([
      { name: 'app-pg', kind: 'postgres', pitr: { ...PITR_DEFAULTS } },
      { name: 'billing-pg', kind: 'postgres', pitr: { ...PITR_DEFAULTS, diff: false } },
      { name: 'events-ch', kind: 'clickhouse' },
    ]);
    const pitr = s.filter((x) => x.kind === 'pitr').map((x) => [x.id, x.cron, x.workflowType, x.args[0]]);
    expect(pitr).toEqual([
      ['lifeboat-pitr-full-app-pg', '0 1 * * 0', 'pitrBackupWorkflow', { target: 'app-pg', type: 'full' }],
      ['lifeboat-pitr-diff-app-pg', '0 1 * * 1-6', 'pitrBackupWorkflow', { target: 'app-pg', type: 'diff' }],
      ['lifeboat-pitr-drill-app-pg', '30 4 * * *', 'pitrDrillWorkflow', { target: 'app-pg' }],
      ['lifeboat-pitr-full-billing-pg', '10 1 * * 0', 'pitrBackupWorkflow', { target: 'billing-pg', type: 'full' }],
      ['lifeboat-pitr-drill-billing-pg', '40 4 * * *', 'pitrDrillWorkflow', { target: 'billing-pg' }],
    ]);
  });
});
