import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { LifeboatError } from '../../errors';

export interface Endpoint {
  url: string;
  user?: string;
  password?: string;
  /** Target name, for messages. */
  target: string;
}

export interface Statement {
  /** One InfluxQL statement. */
  q: string;
  db?: string;
  /** Bound parameters: `$name` in the statement. */
  params?: Record<string, string | number>;
  /** `ms` for integer timestamps in milliseconds; RFC 3339 strings otherwise. */
  epoch?: 'ms';
  /** What the call is for, in errors: e.g. `dropping database metrics`. */
  what: string;
  signal: AbortSignal;
}

export interface Series {
  name?: string;
  tags?: Record<string, string>;
  columns: string[];
  values?: unknown[][];
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A call silent this long is dead (a DROP DATABASE of a large database takes a while, nothing takes this long). */
const CALL_TIMEOUT_MS = 10 * 60 * 1000;
const MAX_BODY = 64 * 1024 * 1024;
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);
/** Statement errors a retry may get past; every other one is the statement's or the data's fault. */
const TRANSIENT = /timeout|timed out|interrupted|killed|max-concurrent|too many|service unavailable|engine is closed/i;

/**
 * The InfluxDB 1.x HTTP API. Credentials go in an `Authorization: Basic`
 * header, never in the URL (`u=`/`p=`), which servers and proxies log;
 * statements go in the POST body, not the query string, for the same reason.
 * A fresh connection per call: calls are few and small, and a stale
 * keep-alive socket would fail a POST that cannot be replayed safely.
 */
export class InfluxHttp {
  /** The server's version, from the `X-Influxdb-Version` header of the last reply. */
  version?: string;

  constructor(private readonly ep: Endpoint) {}

  /** `influxdb user@host:port (target t)`, for messages. */
  where(): string {
    const u = new URL(this.ep.url);
    return `influxdb ${this.ep.user ? `${this.ep.user}@` : ''}${u.host} (target ${this.ep.target})`;
  }

  /** Runs one statement and returns its series; a statement error is thrown. */
  async query(s: Statement): Promise<Series[]> {
    const form = new URLSearchParams({ q: s.q });
    if (s.db !== undefined) form.set('db', s.db);
    if (s.params) form.set('params', JSON.stringify(s.params));
    if (s.epoch) form.set('epoch', s.epoch);
    const r = await this.call('POST', '/query', form.toString(), 'application/x-www-form-urlencoded', s);
    if (r.status !== 200) throw this.statusError(r, s.what);
    let doc: { results?: Array<{ series?: Series[]; error?: string }>; error?: string };
    try {
      doc = JSON.parse(r.body) as typeof doc;
    } catch {
      throw new LifeboatError('InfluxError', `${this.where()}: ${s.what}: the server's reply is not JSON (${r.body.slice(0, 200)}); is ${this.ep.url} an InfluxDB 1.x HTTP API?`, true);
    }
    const err = doc.error ?? doc.results?.[0]?.error;
    if (err !== undefined) throw this.statementError(err, s.what);
    return doc.results?.[0]?.series ?? [];
  }

  /** Writes line-protocol points (millisecond timestamps) into the default retention policy of `db`. */
  async write(db: string, lines: string, what: string, signal: AbortSignal): Promise<void> {
    const r = await this.call('POST', `/write?${new URLSearchParams({ db, precision: 'ms' }).toString()}`, lines, 'text/plain; charset=utf-8', { what, signal });
    if (r.status !== 204 && r.status !== 200) throw this.statusError(r, what);
  }

  private async call(method: string, path: string, body: string, contentType: string, c: { what: string; signal: AbortSignal }): Promise<Reply> {
    const url = new URL(path, `${this.ep.url}/`);
    const headers: Record<string, string> = { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(body)) };
    if (this.ep.user !== undefined) headers.Authorization = `Basic ${Buffer.from(`${this.ep.user}:${this.ep.password ?? ''}`).toString('base64')}`;
    const mod = url.protocol === 'https:' ? https : http;
    let reply: Reply;
    try {
      reply = await new Promise<Reply>((resolve, reject) => {
        const req = mod.request(url, { method, headers, agent: false, signal: c.signal }, (res) => {
          const chunks: Buffer[] = [];
          let n = 0;
          res.on('data', (chunk: Buffer) => {
            n += chunk.length;
            if (n <= MAX_BODY) chunks.push(chunk);
            else req.destroy(new LifeboatError('InfluxError', `${this.where()}: ${c.what}: the reply is larger than ${MAX_BODY} bytes`, true));
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.setTimeout(CALL_TIMEOUT_MS, () => req.destroy(new LifeboatError('StreamFailed', `${this.where()}: ${c.what}: no answer for ${CALL_TIMEOUT_MS / 60000} minutes; the server or the network hangs`, false)));
        req.on('error', reject);
        req.end(body);
      });
    } catch (err) {
      throw this.transportError(err, c);
    }
    const v = reply.headers['x-influxdb-version'];
    if (typeof v === 'string' && v) this.version = v;
    return reply;
  }

  private transportError(err: unknown, c: { what: string; signal: AbortSignal }): unknown {
    if (err instanceof LifeboatError) return err;
    if (c.signal.aborted) return new LifeboatError('Cancelled', `${this.where()}: ${c.what} was cancelled`, false);
    const e = err as NodeJS.ErrnoException;
    if (e.code && CONNECT_ERRORS.has(e.code)) {
      const why = e.code === 'ECONNREFUSED' ? 'connection refused; is the server up?' : e.code === 'ENOTFOUND' ? 'host not found; check the url' : `${e.code}: ${e.message}`;
      return new LifeboatError('Unreachable', `${this.where()} is not reachable while ${c.what} (${why})`, false);
    }
    return new LifeboatError('StreamFailed', `${this.where()}: ${c.what} failed: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`, false);
  }

  private statusError(r: Reply, what: string): LifeboatError {
    const said = serverMessage(r);
    if (r.status === 401) {
      return new LifeboatError('AuthFailed', `${this.where()} refused the login while ${what}: ${said}; check targets.${this.ep.target}.user and password`, true);
    }
    if (r.status === 403) return this.statementError(said, what);
    if (r.status === 404 && /database not found/i.test(said)) return this.statementError(said, what);
    // 400: the statement or the points are wrong (parse error, field type conflict, beyond the retention policy).
    const permanent = r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429;
    return new LifeboatError('InfluxError', `${this.where()}: ${what} failed (HTTP ${r.status}): ${said}`, permanent);
  }

  private statementError(said: string, what: string): LifeboatError {
    if (/database not found/i.test(said)) {
      return new LifeboatError('DatabaseNotFound', `${this.where()}: ${what}: ${said}; check targets.${this.ep.target}.databases`, true);
    }
    if (/not authorized|requires admin|authorization failed|forbidden/i.test(said)) {
      return new LifeboatError('PermissionDenied', `${this.where()}: ${what}: ${said}; the user of target ${this.ep.target} needs admin rights (docs/influxdb.md)`, true);
    }
    return new LifeboatError('InfluxError', `${this.where()}: ${what} failed: ${said}`, !TRANSIENT.test(said));
  }
}

function serverMessage(r: Reply): string {
  const header = r.headers['x-influxdb-error'];
  try {
    const e = (JSON.parse(r.body) as { error?: unknown }).error;
    if (typeof e === 'string' && e) return e;
  } catch {
    // not JSON: a proxy's page, or nothing
  }
  if (typeof header === 'string' && header) return header;
  return r.body.trim().slice(0, 500) || '(no message)';
}

/** The rows of the first series as objects keyed by column. */
export function rows(series: Series[]): Array<Record<string, unknown>> {
  return series.flatMap((s) => (s.values ?? []).map((v) => Object.fromEntries(s.columns.map((c, i) => [c, v[i]]))));
}
