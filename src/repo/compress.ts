import { constants, createZstdCompress, createZstdDecompress } from 'node:zlib';
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

export function compressor(c: CompressionConfig): Transform {
  if (c.algorithm === 'none') return new PassThrough();
  return createZstdCompress({
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
  const z = createZstdDecompress();
  return z;
}
