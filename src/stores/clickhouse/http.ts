import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { LifeboatError } from '../../errors';
import { AUTH_CODES, ClickhouseError, hintFor, isPermanentCode, networkError, parseException, redact, UNKNOWN_DATABASE, UNKNOWN_TABLE } from './errors';

export interface Endpoint {
  url: string;
  user: string;
  password?: string;
  /** Target name, for messages. */
  target: string;
}

export interface Call {
  /** The statement; sent as the body, or in the query string when `body` carries data. */
  sql: string;
  /** Data for an INSERT … FORMAT, streamed as the request body. */
  body?: Readable;
  /** Server settings for this query (never secrets: they go in the URL). */
  settings?: Record<string, string | number>;
  /** What the call is for, in errors: e.g. `backing up table events.hits`. */
  what: string;
  signal: AbortSignal;
  /** Strings to hide from error texts (a statement may carry S3 keys). */
  secrets?: string[];
}

const MAX_ERROR_BODY = 64 * 1024;
/**
 * A connection silent this long is dead: the activity's timer heartbeats would
 * otherwise keep a hung call alive until its start-to-close timeout.
 */
const IDLE_MS = 30 * 60 * 1000;

/**
 * The ClickHouse HTTP interface. Credentials travel in the X-ClickHouse-User
 * and X-ClickHouse-Key headers (18.16 accepts them, as does every newer
 * version), never in the URL, which servers and proxies log. A fresh
 * connection per call: keep-alive sockets go stale after the server's
 * 10-second keep-alive timeout, and a call costs one loopback connect.
 */
export class ClickhouseHttp {
  constructor(private readonly ep: Endpoint) {}

  /** `user@host:port (target t)`, for messages. */
  where(): string {
    const u = new URL(this.ep.url);
    return `clickhouse ${this.ep.user}@${u.host} (target ${this.ep.target})`;
  }

  /** Starts a call and resolves with the response once the server answered 200; any other status is an error. */
  async open(call: Call): Promise<IncomingMessage> {
    const url = new URL(this.ep.url);
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(call.settings ?? {})) params.set(k, String(v));
    if (call.body) params.set('query', call.sql);
    url.pathname = '/';
    url.search = params.toString();
    const headers: Record<string, string> = { 'X-ClickHouse-User': this.ep.user, 'Content-Type': 'application/octet-stream' };
    if (this.ep.password !== undefined) headers['X-ClickHouse-Key'] = this.ep.password;
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method: 'POST', headers, agent: false, signal: call.signal });
    req.setTimeout(IDLE_MS, () => req.destroy(new LifeboatError('StreamFailed', `${this.where()}: ${call.what}: nothing sent or received for ${IDLE_MS / 60000} minutes; the server or the network hangs`, false)));
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });
    let sent: Promise<void>;
    if (call.body) {
      sent = pipeline(call.body, req);
    } else {
      sent = Promise.resolve();
      req.end(call.sql);
    }
    let res: IncomingMessage;
    try {
      res = await Promise.race([response, sent.then(() => response)]);
    } catch (err) {
      req.destroy();
      // A failing request body (e.g. an artifact that fails its checksum) explains more than the broken connection it causes.
      const bodyErr = call.body ? await sent.then(() => undefined, (e: unknown) => e) : undefined;
      const own = (bodyErr as NodeJS.ErrnoException | undefined)?.code === 'ERR_STREAM_PREMATURE_CLOSE';
      throw this.transportError(bodyErr !== undefined && !own ? bodyErr : err, call);
    }
    if (res.statusCode !== 200) {
      const body = await readCapped(res, MAX_ERROR_BODY).catch(() => '');
      // The request body may still be flowing: stop it.
      req.destroy();
      await sent.catch(() => undefined);
      throw this.serverError(res.statusCode ?? 0, body, res.headers['x-clickhouse-exception-code'], call);
    }
    // A failing request body (e.g. an artifact that fails its checksum) fails the call even after a 200.
    sent.catch((err: unknown) => res.destroy(err instanceof Error ? err : new Error(String(err))));
    if (call.body) await sent.catch((err: unknown) => Promise.reject(this.transportError(err, call)));
    return res;
  }

  /** Runs a statement and returns its whole (small) response as text. */
  async text(call: Call): Promise<string> {
    const res = await this.open(call);
    try {
      return await readCapped(res, 256 * 1024 * 1024);
    } catch (err) {
      throw this.transportError(err, call);
    }
  }

  /** Runs a statement that returns nothing of interest. */
  async exec(call: Call): Promise<void> {
    await this.text(call);
  }

  /** Runs a statement with JSONEachRow output (via default_format, which BACKUP honours too) and parses its rows. */
  async rows<T>(call: Call): Promise<T[]> {
    const text = await this.text({ ...call, settings: { ...call.settings, default_format: 'JSONEachRow' } });
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as T);
  }

  serverError(status: number, body: string, header: string | string[] | undefined, call: Pick<Call, 'what' | 'secrets'>): LifeboatError {
    const { code, text } = parseException(redact(body, call.secrets ?? []), header);
    const said = `Code ${code ?? '?'}: ${text}`;
    if ((code !== undefined && AUTH_CODES.has(code)) || status === 401 || status === 403) {
      return new ClickhouseError('AuthFailed', `${this.where()} refused the login while ${call.what}: ${said}${hintFor(code ?? 193, this.ep.target)}`, code, true);
    }
    const type = code === UNKNOWN_DATABASE ? 'DatabaseNotFound' : code === UNKNOWN_TABLE ? 'TableNotFound' : 'ClickhouseError';
    return new ClickhouseError(type, `${this.where()}: ${call.what} failed (HTTP ${status}): ${said}${hintFor(code, this.ep.target)}`, code, isPermanentCode(code));
  }

  transportError(err: unknown, call: Pick<Call, 'what' | 'signal'>): unknown {
    if (err instanceof LifeboatError) return err;
    if (call.signal.aborted) return new LifeboatError('Cancelled', `${this.where()}: ${call.what} was cancelled`, false);
    const e = err as NodeJS.ErrnoException;
    if (e.code && /^E[A-Z_]+$/.test(e.code)) return networkError(e, this.where(), call.what);
    return new LifeboatError('StreamFailed', `${this.where()}: ${call.what} failed: ${(err as Error).message ?? String(err)}`, false);
  }
}

async function readCapped(res: IncomingMessage, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    if (n < cap) chunks.push(c.subarray(0, cap - n));
    n += c.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}
