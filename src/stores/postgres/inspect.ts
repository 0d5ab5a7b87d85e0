import type { Readable } from 'node:stream';
import { toolFilter } from '../child';
import type { StoreContext } from '../types';

/**
 * `pg_restore --list` of a custom-format dump read from stdin: proves the dump
 * is readable by the restore tool, without a server. Returns a summary.
 */
export async function listDump(ctx: StoreContext, pgRestore: string, plaintext: Readable): Promise<string> {
  const toc = await toolFilter({ tool: 'pg_restore --list', path: pgRestore, args: ['--list'], signal: ctx.signal }, plaintext);
  const entries = toc.split('\n').filter((l) => l.trim() && !l.startsWith(';'));
  const tables = entries.filter((l) => / TABLE DATA /.test(l)).length;
  return `pg_restore --list: ${entries.length} entries, ${tables} with table data`;
}
