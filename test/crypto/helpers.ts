import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openStream, sealStream } from '../../src/crypto';

export const CHUNK = 64 * 1024;
export const ENC_CHUNK = CHUNK + 16;

/** Feeds `data` in pieces of `piece` bytes (0: one write). */
export function source(data: Buffer, piece = 0): Readable {
  const parts: Buffer[] = [];
  if (piece <= 0 || data.length === 0) parts.push(data);
  else for (let i = 0; i < data.length; i += piece) parts.push(data.subarray(i, i + piece));
  return Readable.from(parts, { objectMode: false });
}

export async function seal(plaintext: Buffer, recipients: string[], piece = 0): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(source(plaintext, piece), sealStream(recipients), sink(out));
  return Buffer.concat(out);
}

function sink(into: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      into.push(chunk);
      done();
    },
  });
}

export interface OpenResult {
  /** Everything openStream emitted, even if it then failed. */
  emitted: Buffer;
  error: (Error & { type?: string }) | null;
}

export async function tryOpen(file: Buffer, identities: string[], piece = 0): Promise<OpenResult> {
  const out: Buffer[] = [];
  let error: OpenResult['error'] = null;
  try {
    await pipeline(source(file, piece), openStream(identities), sink(out));
  } catch (err) {
    error = err as OpenResult['error'];
  }
  return { emitted: Buffer.concat(out), error };
}

export async function open(file: Buffer, identities: string[], piece = 0): Promise<Buffer> {
  const r = await tryOpen(file, identities, piece);
  if (r.error) throw r.error;
  return r.emitted;
}

/** Runs a binary with `input` on stdin; resolves stdout, rejects with stderr on a non-zero exit. */
export function run(cmd: string, args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString()}`));
    });
    child.stdin.on('error', () => undefined); // age may exit before reading all input
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** A temporary folder, removed by the returned cleanup. */
export async function tempDir(): Promise<{ dir: string; file: (name: string, text: string) => Promise<string>; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-age-'));
  return {
    dir,
    file: async (name, text) => {
      const path = join(dir, name);
      await writeFile(path, text, { mode: 0o600 });
      return path;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Offset of the payload (after the header and the 16-byte nonce) in an age file. */
export function payloadOffset(file: Buffer): number {
  const mac = file.indexOf('\n--- ');
  return file.indexOf(0x0a, mac + 1) + 1 + 16;
}
