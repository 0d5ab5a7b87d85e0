import { LifeboatError } from '../../errors';

/** ClickHouse error codes that retrying cannot fix (src/Common/ErrorCodes.cpp). */
export const AUTH_CODES = new Set([192, 193, 194, 195, 516]); // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, IP_ADDRESS_NOT_ALLOWED, AUTHENTICATION_FAILED
export const UNKNOWN_TABLE = 60;
export const UNKNOWN_DATABASE = 81;
const PERMANENT_CODES = new Set([
  ...AUTH_CODES,
  UNKNOWN_TABLE,
  UNKNOWN_DATABASE,
  62, // SYNTAX_ERROR
  36, // BAD_ARGUMENTS
  46, // UNKNOWN_FUNCTION
  48, // NOT_IMPLEMENTED
  50, // UNKNOWN_TYPE
  164, // READONLY
  497, // ACCESS_DENIED
  598, // BACKUP_ALREADY_EXISTS
  599, // BACKUP_NOT_FOUND
]);

/** A failure the server reported, with its numeric code. */
export class ClickhouseError extends LifeboatError {
  constructor(
    type: string,
    message: string,
    readonly code: number | undefined,
    permanent: boolean,
  ) {
    super(type, message, permanent);
  }
}

export function isPermanentCode(code: number | undefined): boolean {
  return code !== undefined && PERMANENT_CODES.has(code);
}

/**
 * The code and text of a server exception, from the X-ClickHouse-Exception-Code
 * header (newer servers) or the body: 18.16 writes
 * `Code: 60, e.displayText() = DB::Exception: Table x.y doesn't exist., e.what() = DB::Exception`,
 * newer ones `Code: 60. DB::Exception: Table x.y does not exist. (UNKNOWN_TABLE) (version 23.8.1.1)`.
 */
export function parseException(body: string, header?: string | string[]): { code?: number; text: string } {
  const fromHeader = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined;
  const m = /Code: (\d+)[.,]\s*(?:e\.displayText\(\) = )?(?:DB::Exception: )?([\s\S]*)$/.exec(body);
  const code = fromHeader ?? (m ? Number(m[1]) : undefined);
  let text = (m ? m[2]! : body).replace(/, e\.what\(\) = [\w:]+\s*$/, '').trim();
  if (text.length > 2000) text = `${text.slice(0, 2000)}…`;
  return { code, text: text || '(no message)' };
}

/** Finds an exception the server appended to a response it had already started (after a 200). */
export function findTrailingException(tail: Buffer): { code?: number; text: string } | undefined {
  const s = tail.toString('latin1');
  const at = s.lastIndexOf('Code: ');
  if (at < 0 || !/^Code: \d+[.,] /.test(s.slice(at))) return undefined;
  return parseException(Buffer.from(s.slice(at), 'latin1').toString('utf8'));
}

/** Replaces secrets in a server's message, which may quote the statement that carried them. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('[HIDDEN]');
  return out;
}

/** Hints that say what to do, by code. */
export function hintFor(code: number | undefined, target: string): string {
  if (code === undefined) return '';
  if (AUTH_CODES.has(code)) return `; check targets.${target}.user and password`;
  if (code === UNKNOWN_DATABASE) return `; check targets.${target}.databases`;
  if (code === UNKNOWN_TABLE) return '; the table was dropped or renamed meanwhile: run the backup again';
  if (code === 497) return `; grant the user of target ${target} the rights lifeboat needs (docs/clickhouse.md)`;
  if (code === 241) return '; the server ran out of memory for this query: raise max_memory_usage for the lifeboat user';
  return '';
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);

/** Network failures, all retryable: the server could not be reached, or the connection broke. */
export function networkError(err: NodeJS.ErrnoException, where: string, what: string): LifeboatError {
  if (err.code && CONNECT_ERRORS.has(err.code)) {
    const why = err.code === 'ECONNREFUSED' ? 'connection refused; is the server up?' : err.code === 'ENOTFOUND' ? 'host not found; check the url' : `${err.code}: ${err.message}`;
    return new LifeboatError('Unreachable', `${where} is not reachable while ${what} (${why})`, false);
  }
  return new LifeboatError('StreamFailed', `${where}: ${what} failed: the connection broke (${err.code ?? 'error'}: ${err.message})`, false);
}
