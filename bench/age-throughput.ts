/**
 * Throughput of the age Transforms: seals N bytes of zeros from a generator,
 * then opens the result, and reports MB/s (10^6 bytes/s of plaintext) for each.
 *
 *   npx tsc -p tsconfig.json --outDir /tmp/bench-build && node /tmp/bench-build/bench/age-throughput.js [MiB]
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { generateIdentity, openStream, sealStream } from '../src/crypto';

const PIECE = 64 * 1024;

function zeros(bytes: number): Readable {
  const block = Buffer.alloc(PIECE);
  return Readable.from(
    (function* () {
      for (let left = bytes; left > 0; left -= PIECE) yield left >= PIECE ? block : block.subarray(0, left);
    })(),
    { objectMode: false },
  );
}

function collect(into: Buffer[]): Writable {
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _enc, done) {
      into.push(chunk);
      done();
    },
  });
}

function discard(count: { bytes: number }): Writable {
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _enc, done) {
      count.bytes += chunk.length;
      done();
    },
  });
}

/**
 * Seals `bytes` of zeros into a discarding sink, then opens a sealed copy held
 * in memory (so have about `bytes` of RAM free): neither number includes a
 * disk, a network or the cost of retaining the output.
 */
export async function measureAgeThroughput(bytes: number): Promise<{ sealMBps: number; openMBps: number }> {
  const { identity, recipient } = generateIdentity();
  const sunk = { bytes: 0 };
  let t = process.hrtime.bigint();
  await pipeline(zeros(bytes), sealStream([recipient]), discard(sunk));
  const sealSeconds = Number(process.hrtime.bigint() - t) / 1e9;

  // Untimed: the file to open, kept in memory.
  const sealed: Buffer[] = [];
  await pipeline(zeros(bytes), sealStream([recipient]), collect(sealed));
  const count = { bytes: 0 };
  t = process.hrtime.bigint();
  await pipeline(Readable.from(sealed, { objectMode: false }), openStream([identity]), discard(count));
  const openSeconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (count.bytes !== bytes) throw new Error(`opened ${count.bytes} bytes, sealed ${bytes}`);
  return { sealMBps: bytes / 1e6 / sealSeconds, openMBps: bytes / 1e6 / openSeconds };
}

if (require.main === module) {
  const mib = Number(process.argv[2] ?? 512);
  measureAgeThroughput(mib * 1024 * 1024).then(
    ({ sealMBps, openMBps }) => console.log(`age ${mib} MiB: seal ${sealMBps.toFixed(0)} MB/s, open ${openMBps.toFixed(0)} MB/s`),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
