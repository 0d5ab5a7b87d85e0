import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { LifeboatError } from '../errors';

/**
 * The stock zstd CLI, for decompressing straight into a restore tool's stdin:
 * `LIFEBOAT_ZSTD` (a path, or `none` for Node's zstd only), else `zstd` on PATH.
 */
export function zstdCli(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const set = env.LIFEBOAT_ZSTD?.trim();
  if (set === 'none') return undefined;
  const candidates = set ? [set] : (env.PATH ?? '').split(delimiter).filter(isAbsolute).map((d) => join(d, 'zstd'));
  return candidates.find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Feeds a tool's stdin without passing through the worker; settles when the bytes are all there (rejects with why not). */
export type ToolRoute = (stdin: Writable, signal: AbortSignal) => Promise<void>;

const ROUTE = Symbol('lifeboat.toolRoute');
type Routed = Readable & { [ROUTE]?: () => ToolRoute | undefined };

/** The route `input` offers to a tool's stdin, if it has one and nothing has read it yet (it is then the tool's). */
export function takeToolRoute(input: Readable): ToolRoute | undefined {
  return (input as Routed)[ROUTE]?.();
}

/** Pipes the artifact's compressed plaintext (checksum and age checked on the way) into `sink`. */
export type Feed = (sink: Writable) => Promise<void>;

/**
 * A zstd stream read one of two ways, decided by its first consumer. Read in
 * the worker, Node's zstd (`decompress`) expands it. Handed to a restore tool
 * (`takeToolRoute`, in src/stores/child.ts), a zstd CLI child expands it and
 * writes straight into the tool's stdin, so the expanded dump (six times the
 * stored bytes for the bench's wide database) never crosses the worker's
 * thread: on two cores that CPU is the database server's. zstd's stdout is the
 * tool's own stdin pipe and the worker never reads it, so no byte can go to
 * two readers. `abandon` releases the source when neither ever happens.
 */
export function routedZstd(what: string, cli: string, feed: Feed, decompress: () => Readable & Writable, abandon: () => void): Readable {
  let inner: Readable | undefined;
  let taken = false;
  const out: Routed = new Readable({
    highWaterMark: 1 << 20,
    read() {
      if (inner) {
        inner.resume();
        return;
      }
      const d = (inner = decompress());
      feed(d).catch((err: unknown) => d.destroy(err as Error));
      d.on('data', (c: Buffer) => {
        if (!out.push(c)) d.pause();
      });
      d.on('end', () => out.push(null));
      d.on('error', (err) => out.destroy(err));
    },
    destroy(err, done) {
      if (inner) inner.destroy();
      else if (!taken) abandon();
      done(err);
    },
  });
  out[ROUTE] = () => {
    if (inner || taken || out.destroyed) return undefined;
    taken = true;
    return (stdin, signal) => unzstdInto(what, cli, feed, stdin, signal);
  };
  return out;
}

/** zstd -d from `feed` into `stdin` (a tool's stdin pipe); resolves when zstd has written it all. */
async function unzstdInto(what: string, cli: string, feed: Feed, stdin: Writable, signal: AbortSignal): Promise<void> {
  const z = spawn(cli, ['-d', '-c', '-q'], { stdio: ['pipe', stdin, 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  // The tool holds the pipe now: the worker's copy is closed, so the tool sees the end when zstd exits.
  stdin.destroy();
  let tail = '';
  z.stderr.setEncoding('utf8').on('data', (s: string) => (tail = (tail + s).slice(-2000)));
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null; err?: Error }>((resolve) => {
    z.on('close', (code, sig) => resolve({ code, sig }));
    z.on('error', (err) => resolve({ code: null, sig: null, err }));
  });
  const stop = () => z.kill('SIGKILL');
  signal.addEventListener('abort', stop, { once: true });
  try {
    const [fed, { code, sig, err }] = await Promise.all([feed(z.stdin).then(() => undefined, (e: unknown) => e), exited]);
    const closed = (e: unknown) => ['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED'].includes((e as NodeJS.ErrnoException).code ?? '');
    // What went wrong upstream (a checksum, a damaged age chunk) explains more than zstd's exit.
    if (fed !== undefined && !closed(fed)) throw fed;
    if (err) throw new LifeboatError('ToolFailed', `zstd could not start (${cli}): ${err.message}; install zstd, or set LIFEBOAT_ZSTD=none to decompress in the worker`, true);
    // The tool stopped reading (it failed, or was stopped): its own exit status says why.
    if (sig === 'SIGPIPE' || sig === 'SIGKILL' || /broken pipe|write error/i.test(tail)) throw Object.assign(new Error('the restore tool closed its input'), { code: 'EPIPE' });
    if (code !== 0) throw new LifeboatError('ArtifactUnreadable', `${what} does not decompress (zstd: ${tail.trim() || `exit ${code ?? sig}`}): the archive is damaged`);
    if (fed !== undefined) throw fed;
  } finally {
    signal.removeEventListener('abort', stop);
    if (z.exitCode === null && z.signalCode === null) stop();
  }
}
