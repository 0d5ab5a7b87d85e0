import { createHash } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { LifeboatError } from '../../errors';

/**
 * A raft snapshot as Vault and OpenBao write it (`GET sys/storage/raft/snapshot`):
 * a gzip'd tar of `meta.json` (raft index, term, configuration), `state.bin`
 * (the whole encrypted storage), `SHA256SUMS` (of the other two) and
 * `SHA256SUMS.sealed` (the same sums sealed with the server's keyring, which
 * only a server can check). Everything but the sealed sums is checked here,
 * streaming, without a server.
 */
export const SNAPSHOT_FORMAT = 'vault-raft-snapshot';

export interface SnapshotFacts {
  index: number;
  term: number;
  /** The snapshot format version of meta.json. */
  version: number;
  /** Bytes of state.bin. */
  stateBytes: number;
  /** Files whose SHA-256 matched SHA256SUMS. */
  checked: string[];
  /** Whether the archive has the sealed sums (checked by the server on a restore without force). */
  sealedSums: boolean;
}

const SMALL_FILE = 1 << 20;
const SUMS = 'SHA256SUMS';
const SEALED = 'SHA256SUMS.sealed';

function corrupt(label: string, why: string): LifeboatError {
  return new LifeboatError('SnapshotCorrupt', `raft snapshot ${label} is damaged: ${why}; it cannot be restored`, true);
}

/** One line per file: `<sha256 hex>  <name>` (sha256sum's format). */
function parseSums(label: string, text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const m = /^([0-9a-f]{64}) [ *]?(.+)$/.exec(line.trim());
    if (!m) throw corrupt(label, `${SUMS} has a line that is not '<sha256>  <file>': ${JSON.stringify(line.slice(0, 100))}`);
    sums.set(m[2]!, m[1]!);
  }
  if (sums.size === 0) throw corrupt(label, `${SUMS} lists no file`);
  return sums;
}

function parseMeta(label: string, text: string): { index: number; term: number; version: number; size?: number } {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw corrupt(label, `meta.json is not JSON (${(err as Error).message})`);
  }
  const num = (k: string) => (typeof m[k] === 'number' && Number.isInteger(m[k]) && (m[k] as number) >= 0 ? (m[k] as number) : undefined);
  const [index, term, version] = [num('Index'), num('Term'), num('Version')];
  if (index === undefined || term === undefined || version === undefined) throw corrupt(label, 'meta.json lacks a whole-number Index, Term or Version');
  return { index, term, version, size: num('Size') };
}

/**
 * Reads a whole snapshot and checks it: it is a gzip'd tar of plain files;
 * meta.json parses, with its Index, Term and Version; state.bin has the size
 * meta.json says; every file SHA256SUMS lists is there with that SHA-256, and
 * every file but the sums is listed. Fails with a permanent `SnapshotCorrupt`
 * naming what is wrong; a failure of `source` itself is passed on as it is.
 */
export async function verifySnapshot(source: Readable, label: string): Promise<SnapshotFacts> {
  let sourceError: unknown;
  source.once('error', (err) => (sourceError ??= err));
  const hashes = new Map<string, { sha256: string; bytes: number }>();
  const small = new Map<string, string>();
  const tar = extract();
  const fed = pipeline(source, createGunzip(), tar);
  const read = (async () => {
    for await (const entry of tar) {
      const name = entry.header.name;
      if (entry.header.type !== 'file') throw corrupt(label, `it holds ${name}, a ${entry.header.type}, where only files belong`);
      if (hashes.has(name)) throw corrupt(label, `it holds ${name} twice`);
      const hash = createHash('sha256');
      const keep = name === 'meta.json' || name === SUMS;
      const chunks: Buffer[] = [];
      let bytes = 0;
      for await (const c of entry as AsyncIterable<Buffer>) {
        hash.update(c);
        bytes += c.length;
        if (keep && bytes <= SMALL_FILE) chunks.push(c);
      }
      if (keep && bytes > SMALL_FILE) throw corrupt(label, `${name} is ${bytes} bytes, far more than it ever is`);
      hashes.set(name, { sha256: hash.digest('hex'), bytes });
      if (keep) small.set(name, Buffer.concat(chunks).toString('utf8'));
    }
  })();
  try {
    await Promise.all([fed, read]);
  } catch (err) {
    if (sourceError !== undefined) throw sourceError;
    if (err instanceof LifeboatError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'Z_BUF_ERROR' || /unexpected end/i.test((err as Error).message) ? 'it ends early (truncated)' : `it is not a gzip'd tar (${(err as Error).message})`;
    throw corrupt(label, why);
  }
  if (!small.has('meta.json')) throw corrupt(label, 'it has no meta.json');
  if (!hashes.has('state.bin')) throw corrupt(label, 'it has no state.bin');
  if (!small.has(SUMS)) throw corrupt(label, `it has no ${SUMS}`);
  const meta = parseMeta(label, small.get('meta.json')!);
  const sums = parseSums(label, small.get(SUMS)!);
  const checked: string[] = [];
  for (const [name, want] of sums) {
    const got = hashes.get(name);
    if (!got) throw corrupt(label, `${SUMS} lists ${name}, which is not in the archive`);
    if (got.sha256 !== want) throw corrupt(label, `${name} failed its checksum (expected ${want.slice(0, 12)}…, got ${got.sha256.slice(0, 12)}…)`);
    checked.push(name);
  }
  const unlisted = [...hashes.keys()].filter((n) => n !== SUMS && n !== SEALED && !sums.has(n));
  if (unlisted.length) throw corrupt(label, `${unlisted.join(', ')} ${unlisted.length > 1 ? 'are' : 'is'} not in ${SUMS}`);
  const stateBytes = hashes.get('state.bin')!.bytes;
  if (meta.size !== undefined && meta.size !== stateBytes) throw corrupt(label, `state.bin is ${stateBytes} bytes, meta.json says ${meta.size}`);
  return { index: meta.index, term: meta.term, version: meta.version, stateBytes, checked, sealedSums: hashes.has(SEALED) };
}

export function describeSnapshot(f: SnapshotFacts): string {
  return `raft snapshot at index ${f.index}, term ${f.term}: state.bin ${f.stateBytes} bytes; SHA256SUMS of ${f.checked.join(', ')} match${f.sealedSums ? ' (the sealed sums need the server\'s keyring: the server checks them)' : ''}`;
}

/**
 * Passes `source` through unchanged while `check` reads a copy of it, but
 * holds its last chunk back until the check has passed: whoever reads the
 * result (the repository upload, the server's snapshot-force) never sees a
 * complete stream that failed the check. A failed check fails the stream at once.
 */
export function checkedStream<T>(source: Readable, check: (copy: Readable) => Promise<T>): { stream: Readable; result: Promise<T> } {
  const copy = new PassThrough({ highWaterMark: 1 << 20 });
  let held: Buffer | undefined;
  let settled = false;
  const result = check(copy);
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (held) this.push(held);
      held = chunk;
      if (settled || copy.write(chunk)) cb();
      else copy.once('drain', () => cb());
    },
    flush(cb) {
      copy.end();
      result.then(
        () => {
          if (held) this.push(held);
          cb();
        },
        (err: Error) => cb(err),
      );
    },
  });
  result.then(
    () => {
      settled = true;
      copy.resume();
    },
    (err: Error) => {
      settled = true;
      out.destroy(err);
      copy.resume();
    },
  );
  source.on('error', (err) => {
    out.destroy(err);
    copy.destroy(err);
  });
  out.on('close', () => {
    if (!out.writableFinished) {
      source.destroy();
      copy.destroy();
    }
  });
  source.pipe(out);
  return { stream: out, result };
}
