import { addAbortListener } from 'node:events';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { LifeboatError, messageOf } from '../errors';

/**
 * The stock zstd CLI, for decompressing straight into a restore tool's stdin:
 * `LIFEBOAT_ZSTD` (a path, or `none` for Node's zstd only), else `zstd` on PATH.
 */
export function zstdCli(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const set = env.LIFEBOAT_ZSTD?.trim();
  if (set === 'none') return undefined;
  const dirs = (env.PATH ?? '').split(delimiter).filter(isAbsolute);
  const candidates = set && isAbsolute(set) ? [set] : dirs.map((d) => join(d, set || 'zstd'));
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
      if (taken) {
        out.destroy(new Error('this artifact stream was handed to a restore tool; it cannot be read as well'));
        return;
      }
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
    return (stdin, signal) => unzstdInto(what, cli, feed, stdin, signal, abandon);
  };
  return out;
}

/** zstd -d from `feed` into `stdin` (a tool's stdin pipe); resolves when zstd has written it all. */
async function unzstdInto(what: string, cli: string, feed: Feed, stdin: Writable, signal: AbortSignal, abandon: () => void): Promise<void> {
  let z: ChildProcessByStdio<Writable, null, Readable>;
  try {
    z = spawn(cli, ['-d', '-c', '-q'], { stdio: ['pipe', stdin, 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  } catch (err) {
    abandon();
    throw new LifeboatError('ToolFailed', `zstd could not start (${cli}): ${messageOf(err)}`, false);
  }
  // The tool holds the pipe now: the worker's copy is closed, so the tool sees the end when zstd exits.
  stdin.destroy();
  let tail = '';
  z.stderr.setEncoding('utf8').on('data', (s: string) => (tail = (tail + s).slice(-2000)));
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null; err?: Error }>((resolve) => {
    z.on('close', (code, sig) => resolve({ code, sig }));
    z.on('error', (err) => resolve({ code: null, sig: null, err }));
  });
  const stop = () => z.kill('SIGKILL');
  // A cancel that came before zstd started stops it too.
  const listening = addAbortListener(signal, stop);
  // A pipe that closed says nothing of who closed it (zstd died, or the repository's stream ended early): zstd's exit tells.
  const closed = (e: unknown) => ['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED'].includes((e as NodeJS.ErrnoException).code ?? '');
  try {
    const fedResult = feed(z.stdin).then(
      () => undefined,
      (e: unknown) => {
        // Upstream failed (a checksum, a damaged age chunk, the network): zstd must not finish
        // writing what it already has into the tool, so the tool never completes on it.
        if (!closed(e)) stop();
        return e;
      },
    );
    const [fed, { code, sig, err }] = await Promise.all([fedResult, exited]);
    if (fed !== undefined && !closed(fed)) throw fed;
    if (err) throw new LifeboatError('ToolFailed', `zstd could not start (${cli}): ${err.message}; install zstd, or set LIFEBOAT_ZSTD=none to decompress in the worker`, true);
    // The tool stopped reading (it failed, or was stopped): its own exit status says why.
    if (sig === 'SIGPIPE' || (sig === 'SIGKILL' && signal.aborted) || /broken pipe|write error/i.test(tail)) throw Object.assign(new Error('the restore tool closed its input'), { code: 'EPIPE' });
    // zstd's input ended mid-frame because the repository's stream did: a passing failure, read again next attempt.
    if (fed !== undefined && /premature end/i.test(tail)) throw new LifeboatError('StreamFailed', `reading ${what} from the repository ended early; the next attempt reads it again`, false);
    if (code !== 0) throw new LifeboatError('ArtifactUnreadable', `${what} does not decompress (zstd: ${tail.trim() || `exit ${code ?? sig}`}): the archive is damaged`);
  } finally {
    listening[Symbol.dispose]();
    if (z.exitCode === null && z.signalCode === null) stop();
  }
}
