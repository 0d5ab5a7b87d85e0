import { DefaultLogger, LogTimestamp, type LogEntry, type LogLevel } from '@temporalio/worker';
import { LifeboatError } from '../errors';

/**
 * The worker's log lines: one line per event, whatever the event carries
 * (Temporal's own, forwarded from its native core, or lifeboat's activity and
 * workflow loggers). `text` is for people (`time LEVEL message key=value …`),
 * `json` one object per line for a log shipper. A task token (a credential
 * that completes an activity) is never written.
 */
export type LogFormat = 'text' | 'json';

export interface LogOptions {
  format: LogFormat;
  level: LogLevel;
}

const LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
/** Never logged: an activity's task token lets anyone who holds it complete or fail the activity. */
const HIDDEN = new Set(['taskToken']);

export function parseLogFormat(v: string): LogFormat {
  const f = v.toLowerCase();
  if (f === 'text' || f === 'json') return f;
  throw new LifeboatError('ConfigError', `--log-format (or LIFEBOAT_LOG_FORMAT) must be 'text' or 'json', not '${v}'`);
}

export function parseLogLevel(v: string): LogLevel {
  const l = v.toUpperCase() === 'WARNING' ? 'WARN' : (v.toUpperCase() as LogLevel);
  if (LEVELS.includes(l)) return l;
  throw new LifeboatError('ConfigError', `--log-level (or LIFEBOAT_LOG_LEVEL) must be one of ${LEVELS.map((x) => x.toLowerCase()).join(', ')}, not '${v}'`);
}

/** A value as JSON can carry it: errors become their type, message and stack; bigints strings. */
function plain(v: unknown, seen = new WeakSet<object>()): unknown {
  if (v instanceof Error) {
    const e = v as Error & { type?: unknown; cause?: unknown };
    return { type: e.type ?? e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}), ...(e.cause !== undefined ? { cause: plain(e.cause, seen) } : {}) };
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v !== 'object' || v === null) return v;
  if (seen.has(v)) return '[circular]';
  seen.add(v);
  if (Array.isArray(v)) return v.map((x) => plain(x, seen));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (!HIDDEN.has(k) && x !== undefined) out[k] = plain(x, seen);
  return out;
}

/** The event's fields, task token removed, in the order they were given. */
export function fieldsOf(meta: Record<string | symbol, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta ?? {})) if (!HIDDEN.has(k) && v !== undefined) out[k] = plain(v);
  return out;
}

/** `key=value`, quoted when the value has spaces, quotes or is not a plain word; newlines escaped. */
function textValue(v: unknown): string {
  if (v && typeof v === 'object' && 'message' in v && 'type' in v) {
    const e = v as { type: unknown; message: unknown };
    v = `${String(e.type)}: ${String(e.message)}`;
  }
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[A-Za-z0-9_.:/@+-]*$/.test(s) && s !== '' ? s : JSON.stringify(s);
}

/** One event as one line (no trailing newline). */
export function formatLine(format: LogFormat, time: Date, level: LogLevel, message: string, fields: Record<string, unknown>): string {
  if (format === 'json') return JSON.stringify({ time: time.toISOString(), level: level.toLowerCase(), msg: message, ...fields });
  const kv = Object.entries(fields).map(([k, v]) => `${k}=${textValue(v)}`);
  return [time.toISOString(), level.padEnd(5), message.replace(/\r?\n/g, '\\n'), ...kv].join(' ');
}

/**
 * Temporal's logger interface with lifeboat's line format: the SDK's
 * DefaultLogger does the level filtering and keeps each event's own time
 * (forwarded core and workflow events arrive late, stamped when they happened).
 */
export class LineLogger extends DefaultLogger {
  constructor(
    readonly options: LogOptions,
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {
    super(options.level, (entry: LogEntry) => {
      const time = new Date(Number(entry.timestampNanos / 1_000_000n));
      write(`${formatLine(options.format, time, entry.level, entry.message, fieldsOf(entry.meta))}\n`);
    });
  }

  /** An info event written whatever the level: that the worker is up (scripts wait for it), and where. */
  announce(message: string, meta: Record<string, unknown> = {}): void {
    this.write(`${formatLine(this.options.format, new Date(), 'INFO', message, fieldsOf(meta))}\n`);
  }

  override log(level: LogLevel, message: string, meta?: Record<string | symbol, unknown>): void {
    // The workflow bundler's build statistics (a screenful, at info) are a developer's concern.
    super.log(level === 'INFO' && meta?.sdkComponent === 'worker' && message.startsWith('asset workflow-bundle') ? 'DEBUG' : level, message, meta);
  }
}

export { LogTimestamp };

let chosen: LogOptions | undefined;

/**
 * The command line's choice (--log-format, --log-level, or LIFEBOAT_LOG_FORMAT
 * and LIFEBOAT_LOG_LEVEL), set once before any worker starts. Without one, a
 * `lifeboat worker` logs at info and a command that runs a worker inside
 * itself at warn, so its own output is not buried.
 */
export function setLogOptions(o: { format?: string; level?: string }, defaultLevel: LogLevel = 'WARN'): LogOptions {
  chosen = { format: parseLogFormat(o.format ?? process.env.LIFEBOAT_LOG_FORMAT ?? 'text'), level: parseLogLevel(o.level ?? process.env.LIFEBOAT_LOG_LEVEL ?? defaultLevel) };
  return chosen;
}

export function logOptions(): LogOptions {
  return chosen ?? setLogOptions({});
}

/**
 * Node's own warnings (deprecations, experimental features) go through the
 * logger too, so a JSON log stays JSON on every line.
 */
export function routeProcessWarnings(logger: LineLogger): void {
  process.removeAllListeners('warning');
  process.on('warning', (w) => logger.warn(w.message, { sdkComponent: 'node', warning: w.name, ...((w as { code?: string }).code ? { code: (w as { code?: string }).code } : {}) }));
}
