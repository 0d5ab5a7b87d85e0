/** How artifacts are compressed before they are encrypted (src/repo/compress.ts does it). */
export type Compression = 'zstd' | 'none';

export interface CompressionConfig {
  algorithm: Compression;
  /** zstd level, 1 (fastest) to 19; 3 is zstd's own default. */
  level: number;
}

export const DEFAULT_COMPRESSION: CompressionConfig = { algorithm: 'zstd', level: 3 };
export const NO_COMPRESSION: CompressionConfig = { algorithm: 'none', level: 0 };

/** File name of a compressed artifact before the encryption's suffix: `app.dump.zst` (then `.age`). */
export function compressedName(file: string, c: Compression): string {
  return c === 'zstd' ? `${file}.zst` : file;
}
