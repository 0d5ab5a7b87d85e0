import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { once } from 'node:events';
import { PassThrough, Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { readFile } from 'node:fs/promises';
import type { EncryptionConfig } from '../config';
import { openStream, parseIdentityFile, recipientFingerprint, sealStream } from '../crypto';
import { blocksKey, sidecarKey, sidecarText } from '../domain/layout';
import type { ArtifactRecord } from '../domain/manifest';
import { LifeboatError } from '../errors';
import type { CompressionConfig } from '../domain/compression';
import { BLOCK_SIZE, BlockGate, BlockHasher, parseBlockList } from './blocks';
import { compressor, decompressor } from './compress';
import type { PutResult, Repository } from './types';
import { routedZstd, zstdCli } from './unzstd';

/**
 * The artifact pipeline: plaintext -> zstd (when asked) -> age -> SHA-256 ->
 * upload, and back. Memory stays bounded by the upload's part size x queue depth.
 */
export async function storeArtifact(
  repo: Repository,
  key: string,
  plaintext: Readable,
  encryption: EncryptionConfig | null,
  signal?: AbortSignal,
  onBytes?: (plaintextBytes: number) => void,
  compression: CompressionConfig = { algorithm: 'none', level: 0 },
): Promise<PutResult & { plaintextBytes: number; blocks: { size: number; sha256: string } }> {
  const sealed = encryption ? sealStream(encryption.recipients) : new PassThrough();
  const body = new BlockHasher();
  let plaintextBytes = 0;
  const count = counter((n) => onBytes?.(n), (n) => (plaintextBytes = n));
  // Errors anywhere upstream destroy `body`, which fails the upload before it completes.
  pipeline(plaintext, count, compressor(compression), sealed, body).catch(() => undefined);
  let stored: PutResult;
  try {
    stored = await repo.put(key, body, signal);
  } catch (err) {
    // The upload failed (repository gone, full, refused): stop the source too, so a dump does not
    // stay blocked on its pipe, holding its database session, while the next attempt starts.
    plaintext.destroy(err as Error);
    body.destroy();
    throw err;
  }
  const blocks = await repo.putText(blocksKey(key), body.list());
  await repo.putText(sidecarKey(key), sidecarText(stored.sha256, basename(key)));
  return { ...stored, plaintextBytes, blocks: { size: BLOCK_SIZE, sha256: blocks.sha256 } };
}

export function fingerprints(encryption: EncryptionConfig | null): string[] {
  return encryption ? encryption.recipients.map(recipientFingerprint) : [];
}

export async function loadIdentities(encryption: EncryptionConfig | null): Promise<string[]> {
  if (!encryption) return [];
  if (!encryption.identityFile) {
    throw new LifeboatError('ConfigError', 'encryption.identityFile is not set: restoring or verifying an encrypted backup needs the age identity that matches one of its recipients');
  }
  let text: string;
  try {
    text = await readFile(encryption.identityFile, 'utf8');
  } catch (err) {
    throw new LifeboatError('ConfigError', `cannot read age identity file ${encryption.identityFile} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  return parseIdentityFile(text);
}

/** Fails at the end of the stored bytes if their SHA-256 is not the manifest's. */
class ChecksumGate extends Transform {
  private readonly hash = createHash('sha256');

  constructor(
    private readonly url: string,
    private readonly expected: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const got = this.hash.digest('hex');
    if (got === this.expected) done();
    else done(checksumError(this.url, this.expected, got));
  }
}

/**
 * Streams an artifact's plaintext, checking on the way that the stored bytes
 * hash to the manifest's SHA-256 and that the age stream authenticates. The
 * age reader holds back each chunk until it has authenticated it and knows
 * whether it is the last, so a consumer never gets bytes that fail either check
 * from the final chunk; callers that must touch nothing on failure run
 * `verifyArtifact` first. With `blocks` (from `readBlockList`), each block of
 * stored bytes is held back until it matches its listed SHA-256 instead, so no
 * byte the backup did not write ever reaches the consumer.
 */
export async function readArtifact(
  repo: Repository,
  key: string,
  record: ArtifactRecord,
  identities: string[],
  opts: { signal?: AbortSignal; pin?: string; onStoredBytes?: (n: number) => void; blocks?: readonly string[] } = {},
): Promise<Readable> {
  const url = repo.url(key);
  const { body: stored } = await repo.open(key, { signal: opts.signal, pin: opts.pin });
  // Read lazily (below): a response cut before anyone reads it must keep its error, which Node's
  // HTTP client only records for a body that has an error listener.
  stored.on('error', () => undefined);
  const gate = opts.blocks && record.blocks ? new BlockGate(url, record.blocks.size, opts.blocks) : new ChecksumGate(url, record.sha256);
  const opened = record.encryption === 'age' ? openStream(identities) : new PassThrough();
  const feed = (sink: Writable) => pipeline(stored, counter(opts.onStoredBytes), gate, opened, sink);
  const cli = record.compression === 'zstd' ? zstdCli() : undefined;
  if (cli) return routedZstd(url, cli, feed, () => decompressor(record.compression, url), () => stored.destroy());
  const out = decompressor(record.compression, url);
  feed(out).catch(() => undefined);
  return out;
}

/**
 * The artifact's block list, proven to be the one its manifest names;
 * undefined for an artifact recorded without one (older backups).
 */
export async function readBlockList(repo: Repository, key: string, record: ArtifactRecord): Promise<string[] | undefined> {
  if (!record.blocks) return undefined;
  return parseBlockList(await repo.getText(blocksKey(key)), record.blocks, record.bytes, repo.url(blocksKey(key)));
}

function checksumError(url: string, expected: string, got: string): LifeboatError {
  return new LifeboatError('ChecksumMismatch', `artifact '${url}' failed its checksum (expected ${expected}, got ${got}); it was not restored`);
}

/**
 * Reads a whole artifact in one pass: SHA-256 of the stored bytes and age
 * authentication to the last chunk; `inspect`, when given, reads the plaintext
 * too (e.g. `pg_restore --list`), otherwise it is discarded. The checksum is
 * judged first, over every byte, so a tampered artifact is always reported as
 * such even when the age reader notices the damage earlier.
 */
export async function verifyArtifact(
  repo: Repository,
  key: string,
  record: ArtifactRecord,
  identities: string[],
  opts: { onBytes?: (n: number) => void; signal?: AbortSignal; inspect?: (plaintext: Readable) => Promise<string>; sealedFor?: string[]; decode?: boolean } = {},
): Promise<{ inspected?: string; pin: string }> {
  const { body: stored, pin } = await repo.open(key, { signal: opts.signal });
  const hash = createHash('sha256');
  let readError: unknown;
  const note = (err: unknown) => {
    readError ??= err;
  };
  const plaintext = record.encryption === 'age' ? openStream(identities, { sealedFor: opts.sealedFor }) : new PassThrough();
  // `lifeboat verify` decompresses to the end too (a frame that does not decode is not restorable); a restore's
  // pass before it drops anything needs only the checksum and the authentication, which cover every compressed byte.
  const decoded = plaintext.pipe(opts.decode === false && !opts.inspect ? new PassThrough() : decompressor(record.compression, repo.url(key)));
  plaintext.on('error', (err) => decoded.destroy(err));
  const readDone = Promise.all([finished(plaintext), finished(decoded)]).catch(note);
  let inspected: string | undefined;
  let inspectDone: Promise<unknown> = Promise.resolve(decoded.resume());
  if (opts.inspect) {
    const input = tee(decoded);
    // However the inspector ends, release the tee so the rest still flows through the age reader.
    inspectDone = opts
      .inspect(input)
      .then((summary) => (inspected = summary), note)
      .finally(() => input.destroy());
  }
  let n = 0;
  for await (const chunk of stored as AsyncIterable<Buffer>) {
    hash.update(chunk);
    n += chunk.length;
    opts.onBytes?.(n);
    if (!plaintext.destroyed && !plaintext.write(chunk)) {
      // A reader that failed (its error is noted) only stops taking bytes: the hash still reads them all.
      await Promise.race([once(plaintext, 'drain').catch(note), readDone]);
    }
  }
  if (!plaintext.destroyed) plaintext.end();
  await readDone;
  await inspectDone;
  const got = hash.digest('hex');
  if (got !== record.sha256) throw checksumError(repo.url(key), record.sha256, got);
  if (readError !== undefined) throw readError;
  return { inspected, pin };
}

/**
 * Feeds `source`'s data to an inspector for as long as it reads, and keeps
 * `source` flowing after the inspector stops early (`pg_restore --list` reads
 * only the table of contents), so the age reader still authenticates every chunk.
 */
function tee(source: Readable): Readable {
  const input = new PassThrough();
  source.on('data', (chunk: Buffer) => {
    if (input.destroyed || input.writableEnded || input.write(chunk)) return;
    source.pause();
    const go = () => {
      input.off('drain', go);
      input.off('close', go);
      source.resume();
    };
    input.once('drain', go);
    input.once('close', go);
  });
  source.on('end', () => input.end());
  source.on('error', (err) => input.destroy(err));
  return input;
}

/** Reports bytes passing through, at most every 4 MiB, and the total at the end. */
export function counter(onBytes?: (n: number) => void, onEnd?: (n: number) => void): Transform {
  let n = 0;
  let reported = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      if (onBytes && n - reported >= 4 << 20) {
        reported = n;
        onBytes(n);
      }
      done(null, chunk);
    },
    flush(done) {
      onEnd?.(n);
      done();
    },
  });
}
