import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Escapes a .pgpass field: ':' and '\' are special. */
function field(v: string): string {
  return v.replace(/[\\:]/g, (c) => `\\${c}`);
}

/**
 * Runs `fn` with a private passfile (mode 600 in a mode 700 folder) for
 * pg_dump/pg_restore, so the password is in neither argv nor the child's
 * environment; the file is removed afterwards, whatever happens.
 */
export async function withPassfile<T>(host: string, port: number, user: string, password: string | undefined, fn: (path: string | undefined) => Promise<T>): Promise<T> {
  if (password === undefined) return fn(undefined);
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-pg-'));
  const path = join(dir, 'pgpass');
  try {
    await writeFile(path, `${field(host)}:${port}:*:${field(user)}:${field(password)}\n`, { mode: 0o600 });
    return await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
