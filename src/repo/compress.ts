import { constants, createZstdCompress, createZstdDecompress, zstdCompressSync } from 'node:zlib';
import { PassThrough, type Transform } from 'node:stream';
import { LifeboatError } from '../errors';

/**
 * The pipeline's compression stage: zstd from Node's zlib. It runs on libuv's
 * thread pool, not the main thread, so a single-threaded dump tool (pg_dump
 * with its own compression off) keeps a core to itself. Measured here on a
 * 227 MB pg_dump -Z0 of jsonb and text: 1.3 s to 36 MB at level 3, against
 * 5.0 s to 40 MB for pg_dump's own zlib (docs/benchmarks.md).
 */
import type { Compression, CompressionConfig } from '../domain/compression';

/**
 * Output chunk of both directions. zlib's default (16 KiB) cuts a restore's
 * expanded dump into tens of thousands of chunks, each a thread-pool round
 * trip, a callback and a pipe write: decompressing the wide bench dump (70 MB
 * to 400 MB) took 1.3 s and 1.3 s of CPU in 16 KiB chunks, 0.67 s and 0.7 s in
 * 256 KiB ones (the zstd CLI: 0.58 s). On two cores the CPU saved is the
 * database server's.
 */
const CHUNK = 256 << 10;

export function compressor(c: CompressionConfig): Transform {
  if (c.algorithm === 'none') return new PassThrough();
  return createZstdCompress({
    chunkSize: CHUNK,
    params: {
      [constants.ZSTD_c_compressionLevel]: c.level,
      // A checksum per frame: a damaged plaintext would be noticed even without encryption.
      [constants.ZSTD_c_checksumFlag]: 1,
    },
  });
}

/** Undoes an artifact's compression (what its manifest record says); old artifacts have none. */
export function decompressor(c: Compression | undefined, what: string): Transform {
  if (!c || c === 'none') return new PassThrough();
  if (c !== 'zstd') throw new LifeboatError('ArtifactUnreadable', `${what} is compressed with '${String(c)}', which this lifeboat cannot read; upgrade lifeboat`);
  const z = createZstdDecompress({ chunkSize: CHUNK });
  // A frame that does not decode is damage, not a passing fault: it fails as ArtifactUnreadable, never retried.
  const destroy = z._destroy.bind(z);
  z._destroy = (err, done) =>
    destroy(err, (e) => done(e && /^ZSTD_error/.test((e as NodeJS.ErrnoException).code ?? '') ? new LifeboatError('ArtifactUnreadable', `${what} does not decompress (${e.message}): the archive is damaged`) : e));
  return z;
}

/** Names and types of content that is compressed already: compressing it again costs time and gains nothing. */
const COMPRESSED_NAME = /\.(gz|tgz|zst|zstd|zip|bz2|xz|lz4|lzma|br|7z|rar|jpe?g|png|gif|webp|avif|heic|mp4|m4a|mkv|webm|mov|mp3|ogg|opus|flac|woff2?|parquet|orc|snappy)$/i;
const COMPRESSED_TYPE = /^(image|video|audio)\/|^application\/(gzip|x-gzip|zip|zstd|x-xz|x-bzip2|x-7z-compressed|vnd\.rar|x-lz4|brotli)$/i;

export function looksCompressed(name: string, contentType?: string): boolean {
  return COMPRESSED_NAME.test(name) || (contentType !== undefined && COMPRESSED_TYPE.test(contentType));
}

/** How much of an object is tried before deciding whether compressing it pays. */
export const SAMPLE_BYTES = 128 << 10;

/** Whether zstd makes `sample` at least 10% smaller: compressed tenants' chunks (Prometheus XOR) often are not. */
export function compressionPays(sample: Buffer, level: number): boolean {
  if (sample.length < 512) return false;
  const z = zstdCompressSync(sample, { params: { [constants.ZSTD_c_compressionLevel]: level } });
  return z.length < sample.length * 0.9;
}
