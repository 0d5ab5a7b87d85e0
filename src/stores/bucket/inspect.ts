import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openStream } from '../../crypto';
import { loadIdentities } from '../../repo/artifacts';
import { decompressor } from '../../repo/compress';
import type { StoreContext } from '../types';
import { SizeGate, StoredGate } from './gates';
import { readIndex } from './object-index';
import { poolPath, type Scope } from './pool';
import { forEachLimit, Meter, scoped } from './work';

const discard = () =>
  new Writable({
    write(_c, _e, done) {
      done();
    },
  });

/**
 * `lifeboat verify` for a bucket backup: the index was checked against the
 * manifest by the caller; this reads every pool object it names and checks
 * its stored size and SHA-256 (no key needed), and, when the age identity is
 * at hand, that it authenticates and opens to the object's size. Read-only.
 */
export async function inspectIndex(ctx: StoreContext, scope: Scope, item: string, plaintext: Readable, concurrency: number): Promise<string> {
  const { header, entries } = await readIndex(plaintext);
  let identities: string[] | undefined;
  if (header.encryption === 'age' && scope.encryption?.identityFile) identities = await loadIdentities(scope.encryption);
  const meter = new Meter(ctx, 'verify objects', item, entries.length, entries.reduce((n, e) => n + e.stored, 0));
  await forEachLimit(entries, concurrency, ctx.signal, (e) =>
    scoped(ctx.signal, async (signal) => {
      const key = poolPath(scope.dir, e.pool);
      const url = scope.repo.url(key);
      const stored = await scope.repo.get(key, signal);
      const opened = identities ? openStream(identities) : new PassThrough();
      const unzipped = identities ? decompressor(e.compression, url) : new PassThrough();
      const size = identities ? new SizeGate(e.size, `pool object '${url}'`) : new PassThrough();
      await pipeline(stored, new StoredGate(url, e), opened, unzipped, size, discard(), { signal });
      meter.add(1, e.stored);
    }),
  );
  meter.report(true);
  const how = identities ? 'stored SHA-256 and age authentication' : 'stored SHA-256';
  return `${entries.length} objects, ${header.bytes} bytes from s3://${header.source.bucket}/${header.source.prefix}; every pool object checked (${how})`;
}
