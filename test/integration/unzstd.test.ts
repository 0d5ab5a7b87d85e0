import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createZstdDecompress, zstdCompressSync } from 'node:zlib';
import { generateIdentity } from '../../src/crypto';
import type { ArtifactRecord } from '../../src/domain/manifest';
import { readArtifact, storeArtifact } from '../../src/repo/artifacts';
import { LocalRepository } from '../../src/repo/local';
import { routedZstd, takeToolRoute, zstdCli } from '../../src/repo/unzstd';
import { processAlive, toolFilter, type ToolRun } from '../../src/stores/child';

/**
 * A zstd artifact handed to a restore tool decompresses in a zstd child that
 * writes straight into the tool's stdin (src/repo/unzstd.ts); read in the
 * worker, Node's zstd expands it. Real zstd, real tools, a real local
 * repository with age encryption: the bytes arrive whole, and every failure
 * (damage, a wrong checksum, the tool failing, a cancel) is the one that
 * happened, with no zstd left running.
 */
jest.setTimeout(60_000);

let dir: string;
let repo: LocalRepository;
let wrapper: string;
let ranFile: string;
const { identity, recipient } = generateIdentity();
const encryption = { recipients: [recipient] };
// Text that compresses like a dump does, 6 MB: several pipe buffers and zstd blocks.
const plain = Buffer.from(Array.from({ length: 60_000 }, (_, i) => `row ${i}\t{"tenant": "t${i % 97}", "body": "${randomBytes(24).toString('hex')}"}\n`).join(''));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-unzstd-'));
  repo = new LocalRepository(join(dir, 'repo'));
  // A zstd that leaves its pid behind, so a test can tell the route was taken and that it ended.
  ranFile = join(dir, 'zstd-ran');
  wrapper = join(dir, 'zstd');
  await writeFile(wrapper, `#!/bin/sh\necho $$ >> '${ranFile}'\nexec zstd "$@"\n`);
  await chmod(wrapper, 0o755);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await rm(ranFile, { force: true });
  process.env.LIFEBOAT_ZSTD = wrapper;
});
afterEach(() => {
  delete process.env.LIFEBOAT_ZSTD;
});

/** Stores `frame` (zstd bytes) sealed to the test recipient, as a backup would, and returns its manifest record. */
async function store(name: string, frame: Buffer): Promise<ArtifactRecord> {
  const r = await storeArtifact(repo, name, Readable.from([frame]), encryption);
  return { file: name, item: `database:${name}`, name, format: 'pg_dump-custom', encryption: 'age', compression: 'zstd', bytes: r.bytes, sha256: r.sha256, seconds: 0 };
}

const zstd = (b: Buffer) => zstdCompressSync(b, { params: { [constants.ZSTD_c_checksumFlag]: 1 } });
const open = (rec: ArtifactRecord, signal?: AbortSignal) => readArtifact(repo, rec.file, rec, [identity], { signal });
const run = (args: string[], signal = new AbortController().signal): ToolRun => ({ tool: 'restore-tool', path: '/bin/sh', args: ['-c', ...args], signal });
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const zstdRuns = async () => (await readFile(ranFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);

test('handed to a tool, the artifact decompresses in a zstd child straight into its stdin, byte for byte', async () => {
  const rec = await store('whole', zstd(plain));
  const out = await toolFilter(run(['sha256sum']), await open(rec));
  expect(out.split(' ')[0]).toBe(sha(plain));
  const pids = await zstdRuns();
  expect(pids).toHaveLength(1);
  expect(processAlive(pids[0]!)).toBe(false);
});

test('read in the worker it is Node that expands it; once read, it offers no route to a tool', async () => {
  const rec = await store('node', zstd(plain));
  const s = await open(rec);
  const first = (await s[Symbol.asyncIterator]().next()).value as Buffer;
  expect(takeToolRoute(s)).toBeUndefined();
  const rest = Buffer.concat(await s.toArray());
  expect(sha(Buffer.concat([first, rest]))).toBe(sha(plain));
  expect(await zstdRuns()).toEqual([]);
});

test('with LIFEBOAT_ZSTD=none a tool gets the bytes through the worker, the same ones', async () => {
  process.env.LIFEBOAT_ZSTD = 'none';
  const rec = await store('none', zstd(plain));
  expect((await toolFilter(run(['sha256sum']), await open(rec))).split(' ')[0]).toBe(sha(plain));
  expect(await zstdRuns()).toEqual([]);
});

test('a damaged frame is ArtifactUnreadable, not the tool failing on what it got', async () => {
  const frame = zstd(plain);
  frame[frame.length >> 1]! ^= 0xff;
  const rec = await store('damaged', frame);
  await expect(toolFilter(run(['cat > /dev/null']), await open(rec))).rejects.toMatchObject({ type: 'ArtifactUnreadable', message: expect.stringContaining('does not decompress') });
});

test('stored bytes that do not match the manifest fail as ChecksumMismatch even when the tool read everything', async () => {
  const rec = await store('forged', zstd(plain));
  await expect(toolFilter(run(['cat > /dev/null']), await open({ ...rec, sha256: sha('something else') }))).rejects.toMatchObject({ type: 'ChecksumMismatch' });
});

test('a tool that fails reports its own exit, and zstd does not stay behind writing to it', async () => {
  const rec = await store('toolfails', zstd(plain));
  await expect(toolFilter(run(['head -c 1000 > /dev/null; echo "bad header" >&2; exit 3']), await open(rec))).rejects.toMatchObject({ type: 'ToolFailed', message: expect.stringMatching(/exited with code 3: bad header/) });
  const pids = await zstdRuns();
  expect(pids).toHaveLength(1);
  expect(processAlive(pids[0]!)).toBe(false);
});

test('a tool that stops reading early and exits 0 (pg_restore --list reads only the table of contents) succeeds', async () => {
  const rec = await store('early', zstd(plain));
  expect(await toolFilter(run(['head -c 100 | wc -c']), await open(rec))).toBe('100\n');
});

test('cancelled mid-stream: an abort, and neither the tool nor zstd is left running', async () => {
  const rec = await store('cancel', zstd(plain));
  const ac = new AbortController();
  // The tool takes a little, then stalls: zstd blocks on the full pipe until the cancel.
  const pending = toolFilter(run(['head -c 70000 > /dev/null; echo $$ > ' + join(dir, 'tool-pid') + '; sleep 30'], ac.signal), await open(rec, ac.signal));
  for (let i = 0; i < 100 && !(await readFile(join(dir, 'tool-pid'), 'utf8').catch(() => '')); i++) await new Promise((r) => setTimeout(r, 50));
  ac.abort();
  // The repository read stops on the same signal: an abort, as with Node expanding it (the activity reports Cancelled).
  const err = (await pending.catch((e: unknown) => e)) as { name?: string; type?: string };
  expect(err.name === 'AbortError' || err.type === 'Cancelled').toBe(true);
  const tool = Number(await readFile(join(dir, 'tool-pid'), 'utf8'));
  for (const pid of [tool, ...(await zstdRuns())]) expect(processAlive(pid)).toBe(false);
});

test('a route taken with a cancel that came first: zstd is killed at once and writes nothing into the tool', async () => {
  const rec = await store('cancel-first', zstd(plain));
  const route = takeToolRoute(await open(rec))!;
  const tool = spawn('/bin/sh', ['-c', 'wc -c'], { stdio: ['pipe', 'pipe', 'ignore'] });
  let counted = '';
  tool.stdout.setEncoding('utf8').on('data', (s: string) => (counted += s));
  const closed = once(tool, 'close');
  const ac = new AbortController();
  ac.abort();
  await expect(route(tool.stdin, ac.signal)).rejects.toMatchObject({ code: 'EPIPE' });
  await closed;
  expect(Number(counted.trim())).toBeLessThan(plain.length);
  for (const pid of await zstdRuns()) expect(processAlive(pid)).toBe(false);
});

test('without a zstd CLI (none on PATH, or LIFEBOAT_ZSTD naming a missing file) a tool gets the bytes through Node', async () => {
  expect(zstdCli({ PATH: '/nonexistent' })).toBeUndefined();
  expect(zstdCli({ PATH: '/usr/bin:/bin', LIFEBOAT_ZSTD: 'none' })).toBeUndefined();
  expect(zstdCli({ PATH: 'relative/bin:/usr/bin' })).toBe('/usr/bin/zstd');
  expect(zstdCli({ PATH: '/usr/bin', LIFEBOAT_ZSTD: 'zstd' })).toBe('/usr/bin/zstd');
  process.env.LIFEBOAT_ZSTD = join(dir, 'no-such-zstd');
  const rec = await store('missing', zstd(plain));
  expect((await toolFilter(run(['sha256sum']), await open(rec))).split(' ')[0]).toBe(sha(plain));
});

test('a restore tool that is not installed is ToolMissing, with zstd never left running', async () => {
  const rec = await store('notool', zstd(plain));
  await expect(toolFilter({ tool: 'pg_restore', path: join(dir, 'no-such-tool'), args: [], signal: new AbortController().signal }, await open(rec))).rejects.toMatchObject({ type: 'ToolMissing' });
  for (const pid of await zstdRuns()) expect(processAlive(pid)).toBe(false);
});

test('a repository read cut short before zstd has it all is a passing failure (retried), not a damaged archive', async () => {
  const frame = zstd(plain);
  const cut = new PassThrough();
  cut.write(frame.subarray(0, frame.length >> 1));
  setTimeout(() => cut.destroy(), 100); // closed without an error, as an aborted HTTP body may be
  const s = routedZstd('artifact cut', wrapper, (sink: Writable) => pipeline(cut, sink), () => createZstdDecompress(), () => cut.destroy());
  const err = (await toolFilter(run(['cat > /dev/null']), s).catch((e: unknown) => e)) as { type?: string; permanent?: boolean };
  expect(err).toMatchObject({ type: 'StreamFailed', permanent: false });
  for (const pid of await zstdRuns()) expect(processAlive(pid)).toBe(false);
});

test('once handed to a tool, the stream cannot also be read in the worker', async () => {
  const rec = await store('twice', zstd(plain));
  const s = await open(rec);
  const route = takeToolRoute(s);
  expect(route).toBeDefined();
  await expect(s.toArray()).rejects.toThrow(/handed to a restore tool/);
  expect(takeToolRoute(s)).toBeUndefined();
});
