import { addAbortListener } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { LifeboatError } from '../../errors';
import { replyError, type RedisEndpoint } from './client';

/**
 * The snapshot half of Redis replication, as `redis-cli --rdb` does it:
 * AUTH, `REPLCONF capa eof` (so the server may stream the RDB straight from
 * its fork, without writing a file), `REPLCONF rdb-only 1` (Redis 7.0+: the
 * server sends the RDB and nothing after it, and does not pile up the
 * replication stream for this client meanwhile, which is what makes big
 * snapshots run into `client-output-buffer-limit replica …`), then `SYNC`.
 *
 * The reply is `\n` keepalives while the server forks, then either
 * `$<length>\r\n` and that many bytes (disk-based sync) or
 * `$EOF:<40 random bytes>\r\n`, the RDB, and the same 40 bytes (diskless
 * sync). The payload is handed on as a stream with backpressure: nothing
 * holds the RDB in memory.
 */

const EOF_MARK_SIZE = 40;

/** A RESP array of bulk strings: binary-safe, whatever the password holds. */
function command(...args: string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(''));
}

export interface SyncOptions {
  signal: AbortSignal;
  /** Fail when nothing arrives for this long (keepalives count). */
  idleSeconds: number;
  /** Told once the server has said how the payload comes. */
  onFraming?(framing: { diskless: boolean; bytes?: number; rdbOnly: boolean }): void;
  warn?(message: string): void;
}

/** Reads lines (replies before the payload) from a socket, keeping what follows. */
class LineReader {
  private pending: Buffer = Buffer.alloc(0);
  private waiter?: () => void;
  private failure?: Error;

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
  }

  private readonly onData = (c: Buffer) => {
    this.pending = this.pending.length ? Buffer.concat([this.pending, c]) : c;
    this.waiter?.();
  };

  fail(err: Error): void {
    this.failure = err;
    this.waiter?.();
  }

  /** The next line without its line ending. */
  async line(): Promise<string> {
    for (;;) {
      const nl = this.pending.indexOf(0x0a);
      if (nl >= 0) {
        const text = this.pending.subarray(0, nl).toString('latin1').replace(/\r$/, '');
        this.pending = this.pending.subarray(nl + 1);
        return text;
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }

  /** Stops reading lines; returns what arrived after the last one. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    return this.pending;
  }
}

/** Opens the replication stream and returns the RDB payload as a stream. */
export async function syncRdb(ep: RedisEndpoint, o: SyncOptions): Promise<Readable> {
  const socket = connect({ host: ep.host, port: ep.port });
  socket.setNoDelay(true);
  const lines = new LineReader(socket);
  const fail = (err: Error) => lines.fail(err);
  socket.on('error', fail);
  socket.on('close', () => fail(new LifeboatError('StreamFailed', `${ep.where}: the connection closed during the replication handshake`, false)));
  socket.setTimeout(o.idleSeconds * 1000, () => socket.destroy(new LifeboatError('StreamFailed', `${ep.where}: nothing arrived for ${o.idleSeconds}s during SYNC (raise syncTimeoutSeconds for a server that forks slowly)`, false)));
  const onAbort = () => socket.destroy(new LifeboatError('Cancelled', `SYNC with ${ep.where} was cancelled`, false));
  const listening = addAbortListener(o.signal, onAbort);
  const ask = async (what: string, ...args: string[]) => {
    socket.write(command(...args));
    const reply = await lines.line();
    if (reply.startsWith('-')) return reply.slice(1);
    if (!reply.startsWith('+')) throw new LifeboatError('StreamFailed', `${ep.where} answered ${what} with ${JSON.stringify(reply.slice(0, 80))}`, false);
    return undefined;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }).catch((err: NodeJS.ErrnoException) => {
      throw replyError(err, ep, 'connecting for SYNC');
    });
    if (ep.password !== undefined) {
      const e = await ask('AUTH', 'AUTH', ...(ep.user ? [ep.user] : []), ep.password);
      if (e) throw replyError(new Error(e), ep, 'authenticating for SYNC');
    }
    const capa = await ask('REPLCONF capa', 'REPLCONF', 'capa', 'eof');
    if (capa) throw replyError(new Error(capa), ep, 'REPLCONF capa eof');
    const rdbOnlyError = await ask('REPLCONF rdb-only', 'REPLCONF', 'rdb-only', '1');
    const rdbOnly = rdbOnlyError === undefined;
    if (!rdbOnly) {
      if (/NOPERM|NOAUTH|WRONGPASS/.test(rdbOnlyError)) throw replyError(new Error(rdbOnlyError), ep, 'REPLCONF rdb-only 1');
      o.warn?.(`${ep.where} does not know REPLCONF rdb-only (Redis before 7.0: ${rdbOnlyError}); it buffers its write stream for this snapshot, so a busy server may drop it at client-output-buffer-limit replica`);
    }
    socket.write(command('SYNC'));
    let header: string;
    do header = await lines.line();
    while (header === ''); // keepalives while the server forks
    if (header.startsWith('-')) throw replyError(new Error(header.slice(1)), ep, 'SYNC');
    const m = /^\$(?:EOF:(.{40})|(\d+))$/.exec(header);
    if (!m) throw new LifeboatError('StreamFailed', `${ep.where} answered SYNC with ${JSON.stringify(header.slice(0, 80))} instead of an RDB payload header`, false);
    const diskless = m[1] !== undefined;
    o.onFraming?.({ diskless, bytes: diskless ? undefined : Number(m[2]), rdbOnly });
    return payloadStream(socket, lines.detach(), diskless ? { mark: Buffer.from(m[1]!, 'latin1') } : { bytes: Number(m[2]) }, ep, o.idleSeconds * 1000, () => listening[Symbol.dispose]());
  } catch (err) {
    listening[Symbol.dispose]();
    socket.destroy();
    throw err;
  }
}

/**
 * The payload as a Readable that ends only when the whole RDB arrived (all
 * `bytes`, or the end mark); a connection that breaks first fails it, so a
 * cut snapshot is never stored as complete.
 */
function payloadStream(socket: Socket, first: Buffer, framing: { bytes: number } | { mark: Buffer }, ep: RedisEndpoint, idleMs: number, done: () => void): Readable {
  let left = 'bytes' in framing ? framing.bytes : Infinity;
  let held: Buffer = Buffer.alloc(0); // diskless: the last 40 bytes, which may be the end mark
  let finished = false;
  const out = new Readable({
    highWaterMark: 1 << 20,
    read: () => {
      // The idle timeout watches the server, not lifeboat's own upload: off while paused.
      socket.setTimeout(idleMs);
      socket.resume();
    },
    destroy: (err, cb) => {
      done();
      socket.destroy();
      cb(err);
    },
  });
  const finish = () => {
    finished = true;
    socket.removeListener('data', onData);
    socket.destroy(); // rdb-only: nothing follows; a plain SYNC would go on with the write stream
    out.push(null);
  };
  const pause = () => {
    socket.setTimeout(0);
    socket.pause();
  };
  const onData = (c: Buffer) => {
    if (finished) return;
    if ('bytes' in framing) {
      const take = c.subarray(0, Math.min(c.length, left));
      left -= take.length;
      if (take.length && !out.push(take)) pause();
      if (left === 0) finish();
      return;
    }
    const all = held.length ? Buffer.concat([held, c]) : c;
    if (all.length >= EOF_MARK_SIZE && all.subarray(all.length - EOF_MARK_SIZE).equals(framing.mark)) {
      if (all.length > EOF_MARK_SIZE) out.push(all.subarray(0, all.length - EOF_MARK_SIZE));
      return finish();
    }
    const keep = Math.min(EOF_MARK_SIZE, all.length);
    held = Buffer.from(all.subarray(all.length - keep));
    if (all.length > keep && !out.push(all.subarray(0, all.length - keep))) pause();
  };
  socket.removeAllListeners('close');
  socket.removeAllListeners('error');
  socket.on('error', (err) => !finished && out.destroy(new LifeboatError('StreamFailed', `${ep.where}: the replication stream broke after the RDB had started (${err.message})`, false)));
  socket.on('close', () => {
    if (!finished) out.destroy(new LifeboatError('StreamFailed', `${ep.where} closed the replication stream before the RDB was complete${'bytes' in framing ? ` (${left} bytes missing)` : ' (no end mark)'}; see the server log (client-output-buffer-limit, repl-timeout)`, false));
    else done();
  });
  socket.on('data', onData);
  if (first.length) onData(first);
  return out;
}
