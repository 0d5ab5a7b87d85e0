import { Readable } from 'node:stream';
import type { S3RepositoryConfig } from '../../src/config';
import type { ArtifactRecord } from '../../src/domain/manifest';
import { loadIdentities, storeArtifact, verifyArtifact } from '../../src/repo/artifacts';
import { crc64 } from '../../src/stores/redis/crc64';
import { lzfDecompress } from '../../src/stores/redis/lzf';
import { describeRdb, parseRdb } from '../../src/stores/redis/rdb-parse';
import { dumpPayload } from '../../src/stores/redis/replay';
import { RedisStore } from '../../src/stores/redis';
import { adminClient, quietCtx, removePrefix, scopeFor } from '../contract/bucket-kind';
import { redisTarget, seedTypes, startTestRedis, type TestRedis } from '../contract/redis-kind';
import { stackConfig, testEnv } from '../helpers/env';

/**
 * The RDB reader against what real servers write: both SYNC framings, the
 * CRC-64 as Redis computes it, DUMP payloads byte for byte, and damaged RDBs
 * failing `verify` with a message that says what is wrong.
 */
jest.setTimeout(120_000);

const env = testEnv('redisrdb');
let diskless: TestRedis;
let disk: TestRedis;
const rdbs: Record<string, Buffer> = {};
const MARK = 'unique-value-to-damage-0123456789';

function storeFor(t: TestRedis): RedisStore {
  return new RedisStore(stackConfig().file, redisTarget('cache-redis', { port: t.port, password: { file: t.passwordFile } }));
}

async function rdbOf(t: TestRedis): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const store = storeFor(t);
  const [item] = await store.items();
  await store.backup(quietCtx(), item!, async (s) => {
    for await (const c of s) chunks.push(c as Buffer);
  });
  return Buffer.concat(chunks);
}

beforeAll(async () => {
  diskless = await startTestRedis({ diskless: true });
  disk = await startTestRedis({ diskless: false });
  for (const t of [diskless, disk]) {
    const c = t.client();
    await seedTypes(c, 0, 'x');
    await c.select(15);
    await c.set('plain', MARK);
    c.disconnect();
  }
  rdbs.diskless = await rdbOf(diskless);
  rdbs.disk = await rdbOf(disk);
});

afterAll(async () => {
  await diskless?.remove();
  await disk?.remove();
  const repo = env.config.repository as S3RepositoryConfig;
  await removePrefix(await adminClient(repo), repo.bucket, `${repo.prefix}/`);
});

test('CRC-64 is the Jones variant Redis uses (check value of "123456789")', () => {
  expect(crc64(Buffer.from('123456789')).hex()).toBe('e9c6d914c4b8d9ca');
  // Any split gives the same result (the 8-byte fast path and the byte path agree).
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff));
  expect(crc64(data.subarray(0, 3), data.subarray(3, 501), data.subarray(501)).hex()).toBe(crc64(data).hex());
});

test('a DUMP payload built from RDB bytes is byte for byte what the server dumps', async () => {
  const c = diskless.client();
  await c.select(15);
  const dumped = (await c.callBuffer('DUMP', 'plain')) as Buffer;
  c.disconnect();
  expect(dumpPayload(dumped[0]!, dumped.subarray(1, dumped.length - 10), 10)).toEqual(dumped);
});

test('LZF round trip of what Redis compressed: a long repetitive key comes back whole', async () => {
  // Stored compressed: the plain key is not in the RDB's bytes.
  expect(rdbs.diskless!.includes(Buffer.from('k'.repeat(60)))).toBe(false);
  const keys: string[] = [];
  await parseRdb(Readable.from([rdbs.diskless!]), { key: (k) => void keys.push(k.key.toString()) });
  expect(keys).toContain(`x:${'k'.repeat(60)}:long-key-compressed`);
  expect(() => lzfDecompress(Buffer.from([0x05, 0x61]), 6)).toThrow(/damaged/);
});

test.each(['diskless', 'disk'])('the %s SYNC gives an RDB that parses: keys per database, types, checksum', async (which) => {
  const s = await parseRdb(Readable.from([rdbs[which]!]));
  expect(s.version).toBe(10);
  expect(s.checksum).toBe('ok');
  expect(s.dbs.get(0)).toEqual({ keys: 15, expires: 3 });
  expect(s.dbs.get(15)).toEqual({ keys: 1, expires: 0 });
  expect(s.aux['redis-ver']).toMatch(/^7\.0\./);
  expect(describeRdb(s)).toMatch(/^RDB version 10 from Redis 7\.0\.\d+: 16 keys in db0 15 \(3 with TTL\), db15 1; CRC-64 ok \([0-9a-f]{16}\); \d+ bytes$/);
  // Byte by byte, as a slow stream would hand it over.
  const slow = await parseRdb(Readable.from((function* () {
    for (let i = 0; i < rdbs[which]!.length; i += 7) yield rdbs[which]!.subarray(i, i + 7);
  })()));
  expect(slow.crc).toBe(s.crc);
});

test('a truncated RDB, trailing bytes and a foreign file fail with the reason', async () => {
  const rdb = rdbs.diskless!;
  await expect(parseRdb(Readable.from([rdb.subarray(0, rdb.length - 20)]))).rejects.toThrow(/ends early at byte|ends in its checksum/);
  await expect(parseRdb(Readable.from([rdb, Buffer.from('x')]))).rejects.toThrow(/bytes after its end/);
  await expect(parseRdb(Readable.from([Buffer.from('PGDMP custom dump')]))).rejects.toThrow(/not an RDB: it starts with "PGDMP cus"/);
});

test('verify of an artifact whose RDB was damaged before it was stored fails on the CRC-64, naming it', async () => {
  const damaged = Buffer.from(rdbs.diskless!);
  const at = damaged.indexOf(MARK);
  expect(at).toBeGreaterThan(0);
  damaged[at + 5]! ^= 0x20; // a letter's case: the RDB still parses, only the checksum can tell
  const scope = await scopeFor(env.config, 'cache-redis');
  const key = `${scope.dir}/damaged/dump.rdb.age`;
  const stored = await storeArtifact(scope.repo, key, Readable.from([damaged]), env.config.encryption);
  const record = { ...stored, encryption: 'age' } as ArtifactRecord;
  const store = storeFor(diskless);
  const item = (await store.items())[0]!;
  const err = await verifyArtifact(scope.repo, key, record, await loadIdentities(env.config.encryption), { inspect: (p) => store.inspect(quietCtx(), item, p) }).catch((e: unknown) => e as Error);
  expect((err as Error).message).toMatch(/the RDB's CRC-64 does not match: stored [0-9a-f]{16}, computed [0-9a-f]{16} over \d+ bytes; the RDB is damaged/);
  expect(store.isPermanent(err)).toBe(true);
  // The intact one verifies, with its summary.
  const good = await storeArtifact(scope.repo, `${scope.dir}/good/dump.rdb.age`, Readable.from([rdbs.diskless!]), env.config.encryption);
  const r = await verifyArtifact(scope.repo, `${scope.dir}/good/dump.rdb.age`, { ...good, encryption: 'age' } as ArtifactRecord, await loadIdentities(env.config.encryption), {
    inspect: (p) => store.inspect(quietCtx(), item, p),
  });
  expect(r.inspected).toMatch(/^RDB version 10 .*CRC-64 ok/);
});
