import type { Readable } from 'node:stream';

export interface PutResult {
  /** Bytes as stored. */
  bytes: number;
  /** SHA-256 of the bytes as stored, hex. */
  sha256: string;
}

export interface Entry {
  name: string;
  /** true for a folder (an S3 common prefix). */
  dir: boolean;
  /** A file's size, when the listing says it for free (S3 does; a local folder does not). */
  bytes?: number;
}

/**
 * Where backups live. Keys are relative to the repository's root/prefix and
 * are built from validated names only (src/domain/layout.ts).
 */
export interface Repository {
  /** A human-readable address of a key for messages: `s3://bucket/prefix/key`. */
  url(key: string): string;
  /**
   * Streams `body` to `key`. Atomic: the object appears only if the stream
   * ended cleanly (a multipart upload is completed, a local `.partial` is
   * renamed); on error nothing is left behind. Idempotent: a retry overwrites.
   */
  put(key: string, body: Readable, signal?: AbortSignal): Promise<PutResult>;
  putText(key: string, text: string): Promise<PutResult>;
  /** Streams `key`; a missing key is an `ArtifactNotFound` error naming it. */
  get(key: string, signal?: AbortSignal): Promise<Readable>;
  /**
   * Streams `key` with a pin that names exactly this version of it (an S3
   * ETag, a local file's identity). Given a `pin`, streams that version or
   * fails with `ArtifactChanged`: what a restore reads is what it verified.
   */
  open(key: string, opts?: { signal?: AbortSignal; pin?: string }): Promise<{ body: Readable; pin: string }>;
  getText(key: string): Promise<string>;
  exists(key: string): Promise<boolean>;
  /** The stored size of `key` in bytes; undefined when it does not exist. */
  size(key: string): Promise<number | undefined>;
  /** The immediate children of a folder, sorted by name. */
  list(dir: string): Promise<Entry[]>;
  /** When an Object Lock retention still protects the key, until when; otherwise undefined. */
  lockedUntil(key: string): Promise<Date | undefined>;
  /** Optional (S3): aborts the open multipart uploads below `dir`, which interrupted writes leave; returns how many. */
  abortUploads?(dir: string): Promise<number>;
  /** Deletes keys; missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
}
