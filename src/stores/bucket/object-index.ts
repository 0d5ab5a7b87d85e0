import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { LifeboatError } from '../../errors';

/**
 * The artifact of a bucket backup: JSON lines, a header then one line per
 * object. It goes through the normal pipeline (age, SHA-256, manifest), so the
 * manifest covers every object: each line names its pool object and that
 * object's SHA-256 as stored.
 */
export const INDEX_FORMAT = 'bucket-index-v1';

export interface IndexHeader {
  format: typeof INDEX_FORMAT;
  source: { endpoint: string; bucket: string; prefix: string };
  /** How the pool objects of this backup are stored. */
  encryption: 'age' | 'none';
  completionMarkers: string[];
  objects: number;
  bytes: number;
  /** Objects left out by the target's excludes. */
  excluded: number;
  createdAt: string;
}

export interface IndexEntry {
  /** Key relative to the target's prefix. */
  key: string;
  size: number;
  etag: string;
  lastModified: string;
  contentType?: string;
  /** The pool object: `<target>/objects/<pool>` in the repository. */
  pool: string;
  /** Bytes and SHA-256 of the pool object as stored (ciphertext when encrypted). */
  stored: number;
  sha256: string;
  /** The pool object holds the object compressed with zstd (under its encryption). */
  compression?: 'zstd';
}

export function indexStream(header: IndexHeader, entries: readonly IndexEntry[]): Readable {
  return Readable.from(
    (function* () {
      yield Buffer.from(`${JSON.stringify(header)}\n`);
      // Batched: one Buffer per line would make a 100k-object index slow to pipe.
      for (let i = 0; i < entries.length; i += 512) {
        yield Buffer.from(entries.slice(i, i + 512).map((e) => `${JSON.stringify(e)}\n`).join(''));
      }
    })(),
    { objectMode: false },
  );
}

function invalid(why: string): LifeboatError {
  return new LifeboatError('ArtifactInvalid', `the bucket index is not a ${INDEX_FORMAT} file: ${why}`, true);
}

const HEX64 = /^[0-9a-f]{64}$/;

function checkEntry(e: IndexEntry, line: number): IndexEntry {
  if (
    typeof e.key !== 'string' ||
    e.key === '' ||
    !Number.isSafeInteger(e.size) ||
    !Number.isSafeInteger(e.stored) ||
    typeof e.etag !== 'string' ||
    !HEX64.test(e.pool) ||
    !HEX64.test(e.sha256)
  ) {
    throw invalid(`line ${line} is not an object entry`);
  }
  return e;
}

/** Reads a whole index (it is needed whole: the restore plans before it writes). */
export async function readIndex(source: Readable): Promise<{ header: IndexHeader; entries: IndexEntry[] }> {
  let header: IndexHeader | undefined;
  const entries: IndexEntry[] = [];
  let n = 0;
  const lines = createInterface({ input: source, crlfDelay: Infinity });
  // A failing source (checksum, age) must fail the read, not just end it.
  const failed = new Promise<never>((_, reject) => source.once('error', reject));
  failed.catch(() => undefined);
  const read = (async () => {
    for await (const line of lines) {
      n++;
      if (line === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        throw invalid(`line ${n} is not JSON`);
      }
      if (!header) {
        const h = v as IndexHeader;
        if (h?.format !== INDEX_FORMAT) throw invalid(`its header names format ${JSON.stringify(h?.format)}`);
        header = h;
      } else entries.push(checkEntry(v as IndexEntry, n));
    }
  })();
  read.catch(() => undefined);
  await Promise.race([read, failed]);
  if (source.errored) throw source.errored;
  if (!header) throw invalid('it is empty');
  if (entries.length !== header.objects) throw invalid(`its header promises ${header.objects} objects, it has ${entries.length} (truncated?)`);
  return { header, entries };
}
