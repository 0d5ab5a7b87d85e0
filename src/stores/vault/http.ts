import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../../errors';

export interface Endpoint {
  /** `http(s)://host:port`. */
  address: string;
  /** CA certificates (PEM) for https. */
  ca?: Buffer;
  /** Target name, for messages. */
  target: string;
}

export interface Call {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Below /v1/, e.g. `sys/storage/raft/snapshot`. */
  path: string;
  query?: Record<string, string>;
  /** Sent in X-Vault-Token, never in the URL. */
  token?: string;
  /** The setting the token comes from, for messages: e.g. `restoreToken`. */
  tokenSetting?: string;
  json?: unknown;
  /** A streamed request body (a snapshot). */
  body?: Readable;
  /** Statuses besides 2xx that are answers rather than failures (e.g. 404 for a list of nothing). */
  accept?: number[];
  /** What the call is for, in errors: e.g. `taking a raft snapshot`. */
  what: string;
  signal: AbortSignal;
}

const MAX_BODY = 16 * 1024 * 1024;
/** A connection silent this long is dead (a snapshot streams continuously once the server has started it). */
const IDLE_MS = 30 * 60 * 1000;
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET']);

/** A failure the server reported, with its HTTP status. */
export class VaultError extends LifeboatError {
  constructor(
    type: string,
    message: string,
    readonly status: number,
    permanent: boolean,
  ) {
    super(type, message, permanent);
  }
}

/**
 * The Vault/OpenBao HTTP API (OpenBao keeps HashiCorp Vault's /v1 API). A
 * fresh connection per call: calls are few, and a restore replaces the server
 * state a pooled connection might have been opened against.
 */
export class VaultHttp {
  constructor(readonly ep: Endpoint) {}

  /** `vault at host:port (target t)`, for messages. */
  where(): string {
    return `vault ${new URL(this.ep.address).host} (target ${this.ep.target})`;
  }

  /** Sends a call and resolves with the response once its status is 2xx or accepted; other statuses are errors. */
  async open(call: Call): Promise<IncomingMessage> {
    const url = new URL(`${this.ep.address}/v1/${call.path}`);
    for (const [k, v] of Object.entries(call.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = {};
    if (call.token !== undefined) headers['X-Vault-Token'] = call.token;
    const payload = call.json === undefined ? undefined : Buffer.from(JSON.stringify(call.json));
    if (payload) headers['Content-Type'] = 'application/json';
    if (call.body) headers['Content-Type'] = 'application/octet-stream';
    const https_ = url.protocol === 'https:';
    const req = (https_ ? https : http).request(url, { method: call.method, headers, agent: false, signal: call.signal, ...(https_ && this.ep.ca ? { ca: this.ep.ca } : {}) });
    req.setTimeout(IDLE_MS, () => req.destroy(new LifeboatError('StreamFailed', `${this.where()}: ${call.what}: nothing sent or received for ${IDLE_MS / 60000} minutes`, false)));
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });
    const sent = call.body ? pipeline(call.body, req) : Promise.resolve(void req.end(payload));
    let res: IncomingMessage;
    try {
      res = await Promise.race([response, sent.then(() => response)]);
    } catch (err) {
      req.destroy();
      // A failing request body (a snapshot that fails its checks) explains more than the broken connection it causes.
      const bodyErr = call.body ? await sent.then(() => undefined, (e: unknown) => e) : undefined;
      throw this.transportError(bodyErr instanceof LifeboatError ? bodyErr : err, call);
    }
    const status = res.statusCode ?? 0;
    if ((status < 200 || status > 299) && !call.accept?.includes(status)) {
      const text = await readCapped(res, 64 * 1024).catch(() => '');
      req.destroy();
      const bodyErr = call.body ? await sent.then(() => undefined, (e: unknown) => e) : undefined;
      if (bodyErr instanceof LifeboatError) throw bodyErr;
      throw this.serverError(status, text, call);
    }
    if (call.body) await sent.catch((err: unknown) => Promise.reject(this.transportError(err, call)));
    return res;
  }

  /** A call with a small JSON answer (undefined for 204 or an empty body), and its status. */
  async json<T>(call: Call): Promise<{ status: number; body: T | undefined }> {
    const res = await this.open(call);
    let text: string;
    try {
      text = await readCapped(res, MAX_BODY);
    } catch (err) {
      throw this.transportError(err, call);
    }
    if (!text.trim()) return { status: res.statusCode ?? 0, body: undefined };
    try {
      return { status: res.statusCode ?? 0, body: JSON.parse(text) as T };
    } catch {
      throw new LifeboatError('VaultError', `${this.where()}: ${call.what}: the answer is not JSON (HTTP ${res.statusCode}): ${text.slice(0, 200)}`, false);
    }
  }

  /** The `data` of a JSON answer; throws when there is none. */
  async data<T>(call: Call): Promise<T> {
    const { body } = await this.json<{ data?: T }>(call);
    if (!body?.data) throw new LifeboatError('VaultError', `${this.where()}: ${call.what}: the answer has no data`, false);
    return body.data;
  }

  serverError(status: number, text: string, call: Pick<Call, 'what' | 'tokenSetting'>): VaultError {
    let said = text.trim().slice(0, 1000);
    try {
      const errors = (JSON.parse(text) as { errors?: unknown[] }).errors;
      if (Array.isArray(errors)) said = errors.map(String).join('; ') || '(no message)';
    } catch {
      // not JSON: keep the text
    }
    const where = `${this.where()}: ${call.what} failed (HTTP ${status}): ${said}`;
    const setting = `targets.${this.ep.target}.${call.tokenSetting ?? 'token'}`;
    if (status === 403) {
      return new VaultError('PermissionDenied', `${where}; the token in ${setting} is invalid, expired, or lacks the policy lifeboat needs (docs/vault.md)`, status, true);
    }
    if (status === 503 && /sealed/i.test(said)) return new VaultError('VaultSealed', `${where}; the server is sealed: unseal it (bao operator unseal)`, status, false);
    if (status === 501) return new VaultError('VaultNotInitialized', `${where}; the server is not initialised`, status, true);
    if (status === 400 || status === 404 || status === 405) return new VaultError(status === 404 ? 'NotFound' : 'VaultBadRequest', where, status, true);
    return new VaultError('VaultError', where, status, false);
  }

  transportError(err: unknown, call: Pick<Call, 'what' | 'signal'>): unknown {
    if (err instanceof LifeboatError) return err;
    if (call.signal.aborted) return new LifeboatError('Cancelled', `${this.where()}: ${call.what} was cancelled`, false);
    const e = err as NodeJS.ErrnoException;
    if (e.code && CONNECT_ERRORS.has(e.code)) {
      const why = e.code === 'ECONNREFUSED' ? 'connection refused; is the server up?' : e.code === 'ENOTFOUND' ? 'host not found; check the address' : e.code;
      return new LifeboatError('Unreachable', `${this.where()} is not reachable while ${call.what} (${why})`, false);
    }
    if (e.code && /CERT|SSL|TLS|SELF_SIGNED/.test(e.code)) {
      return new LifeboatError('TlsFailed', `${this.where()}: ${call.what}: the TLS connection failed (${e.code}: ${e.message}); check targets.${(this.ep as Endpoint).target}.caFile`, true);
    }
    return new LifeboatError('StreamFailed', `${this.where()}: ${call.what} failed: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`, false);
  }
}

export async function readCapped(res: IncomingMessage, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    if (n < cap) chunks.push(c.subarray(0, cap - n));
    n += c.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}
