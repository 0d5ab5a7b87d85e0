import { Redis } from 'ioredis';
import { resolveSecret } from '../../config';
import { LifeboatError } from '../../errors';
import type { RedisSettings } from './settings';

/** Where a Redis server is and how to log in; `where` names it in messages (never the password). */
export interface RedisEndpoint {
  host: string;
  port: number;
  user?: string;
  password?: string;
  /** e.g. `redis 127.0.0.1:6379 (target cache-redis)`. */
  where: string;
  /** The settings key to check on a login failure, e.g. `targets.cache-redis.password`. */
  passwordField: string;
}

export async function endpointOf(s: Pick<RedisSettings, 'host' | 'port' | 'user' | 'password'>, target: string): Promise<RedisEndpoint> {
  const password = s.password ? await resolveSecret(s.password, `targets.${target}.password`) : undefined;
  return { host: s.host, port: s.port, user: s.user, password, where: `redis ${s.host}:${s.port} (target ${target})`, passwordField: `targets.${target}.password` };
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET']);

/**
 * A Redis failure as a LifeboatError that names the server, what lifeboat was
 * doing and the fix. Login and permission failures are permanent, as is a
 * server refusing a RESTORE payload (bad data); the rest may pass.
 */
export function replyError(err: unknown, ep: RedisEndpoint, what: string): LifeboatError {
  if (err instanceof LifeboatError) return err;
  const e = err as NodeJS.ErrnoException;
  const msg = (e.message ?? String(err)).replace(/^ReplyError: /, '');
  if (e.code && CONNECT_ERRORS.has(e.code)) {
    const why = e.code === 'ECONNREFUSED' ? 'connection refused; is the server up?' : e.code === 'ENOTFOUND' ? 'host not found; check the host' : `${e.code}: ${msg}`;
    return new LifeboatError('Unreachable', `${ep.where} is not reachable while ${what} (${why})`, false);
  }
  if (/^(WRONGPASS|NOAUTH)|invalid password|invalid username-password/i.test(msg)) {
    return new LifeboatError('AuthFailed', `${ep.where} refused the login while ${what}: ${msg}; check ${ep.passwordField}${ep.user ? ` and the user '${ep.user}'` : ''}`, true);
  }
  if (/^ERR AUTH <password> called without any password configured/.test(msg)) {
    return new LifeboatError('AuthFailed', `${ep.where} has no password, but ${ep.passwordField} is set: ${msg}; remove it or configure requirepass`, true);
  }
  if (/^NOPERM/.test(msg)) {
    return new LifeboatError('PermissionDenied', `${ep.where} denied ${what}: ${msg}; grant the ACL user the commands listed in docs/redis.md`, true);
  }
  if (/Bad data format|payload version or checksum are wrong|^ERR syntax error|^ERR unknown command|DB index is out of range/i.test(msg)) {
    return new LifeboatError('RedisError', `${ep.where} refused ${what}: ${msg}`, true);
  }
  if (e.message === 'Connection is closed.' || /Stream isn't writeable|connection.*closed/i.test(msg)) {
    return new LifeboatError('Unreachable', `${ep.where}: the connection closed while ${what}`, false);
  }
  return new LifeboatError('RedisError', `${ep.where}: ${what} failed: ${msg}`, false);
}

/** A connected ioredis client that never reconnects or retries: a failure fails the activity, whose retry starts over. */
export async function openClient(ep: RedisEndpoint, what: string): Promise<Redis> {
  const client = new Redis({
    host: ep.host,
    port: ep.port,
    lazyConnect: true,
    // RESP2: no HELLO handshake, which a server with requirepass refuses before AUTH.
    protocol: 2,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    reconnectOnError: () => false,
    connectTimeout: 10_000,
    // No CLIENT SETINFO/SETNAME: sent before AUTH they would only be refused, and an ACL user need not be allowed them.
    disableClientInfo: true,
  });
  // Failures reach the caller through the commands; without a listener ioredis prints them.
  client.on('error', () => undefined);
  try {
    await client.connect();
    // AUTH by hand: ioredis would report a refused login only as a closed connection.
    if (ep.password !== undefined) await client.call('AUTH', ...(ep.user ? [ep.user] : []), ep.password);
  } catch (err) {
    client.disconnect();
    throw replyError(err, ep, what);
  }
  return client;
}

export async function withClient<T>(ep: RedisEndpoint, what: string, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = await openClient(ep, what);
  try {
    return await fn(c);
  } catch (err) {
    throw replyError(err, ep, what);
  } finally {
    c.disconnect();
  }
}

/** `INFO <section>` as key -> value. */
export async function info(c: Redis, section: string): Promise<Record<string, string>> {
  const text = await c.info(section);
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

/** Keys per database from `INFO keyspace` (databases without keys are absent). */
export async function keyspace(c: Redis): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const [k, v] of Object.entries(await info(c, 'keyspace'))) {
    const m = /^db(\d+)$/.exec(k);
    const n = /(?:^|,)keys=(\d+)/.exec(v);
    if (m && n) out.set(Number(m[1]), Number(n[1]));
  }
  return out;
}

/** Empties `dbs` (undefined: every database). */
export async function flush(c: Redis, dbs: number[] | undefined): Promise<void> {
  if (!dbs) {
    await c.flushall();
    return;
  }
  for (const db of dbs) {
    await c.select(db);
    await c.flushdb();
  }
}
