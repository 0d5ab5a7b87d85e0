import { LifeboatError } from '../../src/errors';
import { LineLogger, parseLogLevel } from '../../src/worker/logging';

/** The worker's log lines (src/worker/logging.ts), written to an array instead of stderr. */
function capture(format: 'text' | 'json', level: 'DEBUG' | 'INFO' | 'WARN' = 'DEBUG') {
  const lines: string[] = [];
  return { logger: new LineLogger({ format, level }, (l) => lines.push(l)), lines };
}

// What the SDK's activity logger attaches to every event of an activity.
const activityMeta = { sdkComponent: 'activity', attempt: 1, taskToken: 'CiQ5ZGVhZGJlZWYtc2VjcmV0LXRva2Vu', activityType: 'backupItem', workflowId: 'backup/app-pg/x' };

test('text: one line per event, fields as key=value, never the task token', () => {
  const { logger, lines } = capture('text');
  logger.info('artifact stored', { ...activityMeta, url: 's3://lifeboat/backups/a b.age', bytes: 42 });
  logger.warn('two\nlines', { detail: { nested: true } });
  expect(lines).toHaveLength(2);
  for (const l of lines) expect(l.endsWith('\n') && l.indexOf('\n') === l.length - 1).toBe(true);
  expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  artifact stored sdkComponent=activity attempt=1 activityType=backupItem workflowId=backup\/app-pg\/x url="s3:\/\/lifeboat\/backups\/a b\.age" bytes=42\n$/);
  expect(lines.join('')).not.toContain('taskToken');
  expect(lines.join('')).not.toContain(activityMeta.taskToken);
  expect(lines[1]).toContain('WARN  two\\nlines detail="{\\"nested\\":true}"');
});

test('json: every line parses; errors carry type, message and stack; the task token is gone', () => {
  const { logger, lines } = capture('json');
  logger.error('restore failed', { ...activityMeta, error: new LifeboatError('ChecksumMismatch', 'artifact x failed its checksum') });
  logger.debug('big number', { n: 10n });
  const [e, d] = lines.map((l) => JSON.parse(l));
  expect(e).toMatchObject({ level: 'error', msg: 'restore failed', activityType: 'backupItem', error: { type: 'ChecksumMismatch', message: 'artifact x failed its checksum' } });
  expect(e.error.stack).toContain('ChecksumMismatch');
  expect(e).not.toHaveProperty('taskToken');
  expect(d).toMatchObject({ level: 'debug', n: '10' });
});

test('events below the level are dropped; level names are case-insensitive', () => {
  const { logger, lines } = capture('text', 'WARN');
  logger.info('not shown');
  logger.warn('shown');
  expect(lines).toHaveLength(1);
  expect(parseLogLevel('warning')).toBe('WARN');
  expect(parseLogLevel('Error')).toBe('ERROR');
  expect(() => parseLogLevel('loud')).toThrow("--log-level (or LIFEBOAT_LOG_LEVEL) must be one of trace, debug, info, warn, error, not 'loud'");
});
