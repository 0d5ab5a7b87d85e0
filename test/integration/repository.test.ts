import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { Repository } from '../../src/repo';
import { openRepository } from '../../src/repo';
import type { ArtifactRecord } from '../../src/domain/manifest';
import { readArtifact, readBlockList, storeArtifact } from '../../src/repo/artifacts';
import { LocalRepository } from '../../src/repo/local';
import { testEnv } from '../helpers/env';

const env = testEnv('repo');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-repo-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A stream that yields some bytes, then fails, like a pg_dump that dies halfway. */
function failingStream(): Readable {
  return Readable.from(
    (async function* () {
      yield Buffer.alloc(1024 * 1024, 1);
      yield Buffer.alloc(1024 * 1024, 2);
      throw new Error('source died halfway');
    })(),
  );
}

const kinds: Array<[string, () => Promise<Repository>]> = [
  ['s3 (MinIO)', () => openRepository(env.config)],
  ['local folder', async () => new LocalRepository(dir)],
];

describe.each(kinds)('%s repository', (_name, open) => {
  let repo: Repository;
  beforeAll(async () => {
    repo = await open();
  });

  it('streams an object in and out with its size and SHA-256', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    const r = await repo.put('t/one.bin', Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
    expect(r).toEqual({ bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    const back: Buffer[] = [];
    for await (const c of await repo.get('t/one.bin')) back.push(c as Buffer);
    expect(Buffer.concat(back).equals(data)).toBe(true);
    expect(await repo.exists('t/one.bin')).toBe(true);
  });

  it('leaves nothing behind when the source fails halfway', async () => {
    await expect(repo.put('t/broken.bin', failingStream())).rejects.toThrow('source died halfway');
    expect(await repo.exists('t/broken.bin')).toBe(false);
    expect((await repo.list('t')).map((e) => e.name)).not.toContain('broken.bin');
  });

  it('fails, never waits forever, when the source fails before the upload has started', async () => {
    // A tool that dies (or is cancelled) at once fails its stream while the repository is still being asked about stale uploads.
    const early = new PassThrough();
    process.nextTick(() => early.destroy(new Error('pg_dump died at once')));
    await expect(storeArtifact(repo, 't/early.dump.zst.age', early, env.config.encryption, undefined, undefined, { algorithm: 'zstd', level: 3 })).rejects.toThrow('pg_dump died at once');
    const closed = new PassThrough();
    closed.destroy(); // closed without an error: still not a complete object
    await expect(repo.put('t/closed.bin', closed)).rejects.toThrow(/premature close/i);
    expect(await repo.exists('t/early.dump.zst.age')).toBe(false);
    expect(await repo.exists('t/closed.bin')).toBe(false);
  }, 20_000);

  it('a store cancelled before it started ends at once and stores nothing', async () => {
    const ac = new AbortController();
    ac.abort();
    const never = new PassThrough(); // a source that would never end by itself
    await expect(storeArtifact(repo, 't/cancelled.dump.age', never, env.config.encryption, ac.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(await repo.exists('t/cancelled.dump.age')).toBe(false);
  }, 20_000);

  it('lists folders and files, and deletes', async () => {
    await repo.putText('t/sub/a.txt', 'a');
    const names = (await repo.list('t')).map((e) => `${e.name}${e.dir ? '/' : ''}`);
    expect(names).toEqual(expect.arrayContaining(['one.bin', 'sub/']));
    await repo.delete(['t/sub/a.txt', 't/one.bin', 't/never-existed']);
    expect(await repo.exists('t/one.bin')).toBe(false);
  });

  it('names a missing object in its error', async () => {
    await expect(repo.get('t/missing.bin')).rejects.toMatchObject({ type: 'ArtifactNotFound', message: expect.stringMatching(/t\/missing\.bin does not exist$/) });
  });

  it('lists the SHA-256 of each 4 MiB block; a read with the list passes only the blocks that match it', async () => {
    const MiB = 1 << 20;
    const data = randomBytes(10 * MiB + 123);
    // Chunks that straddle the block edges.
    const chunks = [data.subarray(0, 3 * MiB), data.subarray(3 * MiB, 5 * MiB + 1), data.subarray(5 * MiB + 1)];
    const stored = await storeArtifact(repo, 't/blocks.bin', Readable.from(chunks), null);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const want = [data.subarray(0, 4 * MiB), data.subarray(4 * MiB, 8 * MiB), data.subarray(8 * MiB)].map(sha);
    const list = await repo.getText('t/blocks.bin.blocks');
    expect(list).toBe(want.map((d) => `${d}\n`).join(''));
    expect(stored.blocks).toEqual({ size: 4 * MiB, sha256: sha(Buffer.from(list)) });
    const record: ArtifactRecord = { file: 'blocks.bin', item: 'test', name: 'test', format: 'bytes', encryption: 'none', bytes: stored.bytes, sha256: stored.sha256, blocks: stored.blocks, seconds: 0 };
    const blocks = (await readBlockList(repo, 't/blocks.bin', record))!;
    expect(blocks).toEqual(want);

    /** What a reader got before the stream ended, and how it ended. */
    const drain = async () => {
      const got: Buffer[] = [];
      const out = await readArtifact(repo, 't/blocks.bin', record, [], { blocks });
      const err = await (async () => {
        for await (const c of out) got.push(c as Buffer);
      })().then(() => undefined, (e: unknown) => e);
      return { got: Buffer.concat(got), err };
    };
    const whole = await drain();
    expect(whole.err).toBeUndefined();
    expect(whole.got.equals(data)).toBe(true);

    // One bit flipped in the second block: the first block comes out whole, not one byte of the second.
    const bad = Buffer.from(data);
    bad.writeUInt8(bad.readUInt8(5 * MiB) ^ 1, 5 * MiB);
    await repo.put('t/blocks.bin', Readable.from([bad]));
    const tampered = await drain();
    expect(tampered.err).toMatchObject({ type: 'ChecksumMismatch', message: expect.stringContaining(`failed its checksum at block 2 of 3 (bytes from ${4 * MiB})`) });
    expect(tampered.got.equals(data.subarray(0, 4 * MiB))).toBe(true);

    // Cut at a block's edge, or longer than listed: both fail at the end.
    await repo.put('t/blocks.bin', Readable.from([data.subarray(0, 8 * MiB)]));
    expect((await drain()).err).toMatchObject({ type: 'ChecksumMismatch', message: expect.stringContaining('ends after 2 of the 3 blocks the backup listed') });
    await repo.put('t/blocks.bin', Readable.from([data, Buffer.from('more')]));
    expect((await drain()).err).toMatchObject({ type: 'ChecksumMismatch' });

    // A list that is not the one the manifest names is refused, whatever it says.
    await repo.putText('t/blocks.bin.blocks', want.slice(0, 2).map((d) => `${d}\n`).join(''));
    await expect(readBlockList(repo, 't/blocks.bin', record)).rejects.toMatchObject({ type: 'ChecksumMismatch', message: expect.stringContaining("block list '") });
    await repo.delete(['t/blocks.bin', 't/blocks.bin.blocks', 't/blocks.bin.sha256']);
  }, 60_000);

  it('writes a sidecar that sha256sum -c accepts on the downloaded artifact', async () => {
    const stored = await storeArtifact(repo, 't/app.dump.age', Readable.from([Buffer.from('dump bytes')]), env.config.encryption);
    const local = await mkdtemp(join(tmpdir(), 'lifeboat-dl-'));
    try {
      const chunks: Buffer[] = [];
      for await (const c of await repo.get('t/app.dump.age')) chunks.push(c as Buffer);
      await writeFile(join(local, 'app.dump.age'), Buffer.concat(chunks));
      await writeFile(join(local, 'app.dump.age.sha256'), await repo.getText('t/app.dump.age.sha256'));
      expect(execFileSync('sha256sum', ['-c', 'app.dump.age.sha256'], { cwd: local, encoding: 'utf8' })).toBe('app.dump.age: OK\n');
      expect(stored.bytes).toBe(Buffer.concat(chunks).length);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });
});
