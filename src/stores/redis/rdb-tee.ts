import { open } from 'node:fs/promises';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { parseRdb, type RdbSummary } from './rdb-parse';

/** Writes `chunk`, waiting while `out` is full; fails if `out` is closed meanwhile. */
export function writeOrWait(out: Writable, chunk: Buffer): Promise<void> | undefined {
  if (out.destroyed) return Promise.reject(out.errored ?? new Error('the stream was closed'));
  if (out.write(chunk)) return undefined;
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      out.off('drain', onDrain);
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(out.errored ?? new Error('the stream was closed'));
    out.on('drain', onDrain);
    out.on('close', onClose);
  });
}

/**
 * Runs the RDB parser beside another consumer of the same bytes: `feed(chunk)`
 * hands each chunk to both (with backpressure from both), `finish()` says
 * the source ended and returns the parser's verdict (keys per database,
 * checksum). The parser holds at most a few MiB, whatever the RDB's size.
 */
export function parserTap(): { feed(chunk: Buffer): Promise<void> | undefined; finish(): Promise<RdbSummary>; abort(err: Error): void } {
  const toParser = new PassThrough({ highWaterMark: 4 << 20 });
  let failure: unknown;
  const parsed = parseRdb(toParser).catch((err: unknown) => {
    failure = err;
    toParser.destroy();
    throw err;
  });
  parsed.catch(() => undefined);
  return {
    feed(chunk) {
      if (failure) return Promise.reject(failure);
      const w = writeOrWait(toParser, chunk);
      // A parser that failed stops reading: its error explains more than the closed stream.
      return w?.catch((err: unknown) => Promise.reject(failure ?? err));
    },
    async finish() {
      toParser.end();
      return parsed;
    },
    abort(err) {
      toParser.destroy(err);
    },
  };
}

/**
 * Streams an RDB into a new private file (mode 600; it must not exist), checks
 * it on the way (parse and CRC-64) and fsyncs it. On any failure the file is
 * left for the caller to remove.
 */
export async function writeVerifiedRdb(source: Readable, path: string, signal: AbortSignal): Promise<RdbSummary> {
  const tap = parserTap();
  const fh = await open(path, 'wx', 0o600);
  try {
    for await (const chunk of source) {
      if (signal.aborted) throw signal.reason ?? new Error('cancelled');
      await fh.write(chunk as Buffer);
      const w = tap.feed(chunk as Buffer);
      if (w) await w;
    }
    const summary = await tap.finish();
    await fh.sync();
    return summary;
  } catch (err) {
    tap.abort(err as Error);
    source.destroy();
    throw err;
  } finally {
    await fh.close();
  }
}
