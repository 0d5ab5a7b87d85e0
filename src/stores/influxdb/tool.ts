import { connect } from 'node:net';
import { LifeboatError } from '../../errors';
import { toolText, type ToolRun } from '../child';

/** `backup -portable` / `restore -portable` arrived in InfluxDB 1.5. */
export const PORTABLE_MIN_VERSION = [1, 5] as const;

const INSTALL = 'Debian: influxdb, 1.5 or newer';

/** What `influxd` prints for failures that a retry cannot fix. */
export const PERMANENT_TOOL_ERRORS = /flag provided but not defined|imported metadata does not have dat(a)?base|invalid metadata|backup path should be a valid directory|no backup files|gzip: invalid header|archive\/tar: invalid tar header/;

/** `1.6.7~rc0` from `InfluxDB v1.6.7~rc0 (git: …)`; also for the server's `X-Influxdb-Version` (`1.8.10`, `v2.7.1`). */
export function parseVersion(text: string): string | undefined {
  return /v?(\d+\.\d+(?:\.\d+)?[^\s(]*)/.exec(text)?.[1];
}

export function versionAtLeast(version: string, min: readonly number[]): boolean {
  const parts = version.split(/[.~-]/).map((p) => parseInt(p, 10));
  for (let i = 0; i < min.length; i++) {
    const v = parts[i] ?? 0;
    if (Number.isNaN(v)) return false;
    if (v !== min[i]) return v > min[i]!;
  }
  return true;
}

export function major(version: string): number {
  return parseInt(version, 10);
}

function run(influxd: string, args: string[], signal: AbortSignal, tool: string): ToolRun {
  // No environment beyond the basics, and no credentials at all: the RPC service takes none.
  return { tool, path: influxd, args, signal, install: INSTALL };
}

/** The `influxd` binary's version; a tool too old for `-portable` is a permanent error. */
export async function influxdVersion(influxd: string, signal: AbortSignal): Promise<string> {
  const out = await toolText(run(influxd, ['version'], signal, 'influxd version'));
  const v = parseVersion(out);
  if (!v) throw new LifeboatError('ToolFailed', `influxd version (${influxd}) printed no version: ${out.trim().slice(0, 200)}`, true);
  if (!versionAtLeast(v, PORTABLE_MIN_VERSION)) {
    throw new LifeboatError('ToolTooOld', `influxd ${v} (${influxd}) has no portable backup format (it needs ${PORTABLE_MIN_VERSION.join('.')} or newer); install a newer influxdb package on the worker or set the target's influxd to one`);
  }
  return v;
}

/** `influxd backup -portable` of one database into `dir`. */
export async function backupTool(influxd: string, rpc: string, database: string, dir: string, signal: AbortSignal): Promise<string> {
  return toolText(run(influxd, ['backup', '-portable', '-host', rpc, '-database', database, dir], signal, `influxd backup of database ${database}`));
}

/** `influxd restore -portable` of `database` from `dir` as `into` (which must not exist). */
export async function restoreTool(influxd: string, rpc: string, database: string, into: string, dir: string, signal: AbortSignal): Promise<string> {
  return toolText(run(influxd, ['restore', '-portable', '-host', rpc, '-db', database, '-newdb', into, dir], signal, `influxd restore of database ${database} as ${into}`));
}

/**
 * Connects to the RPC service and hangs up: `influxd backup` would otherwise
 * retry an unreachable port for minutes before saying so.
 */
export async function reachRpc(address: string, target: string, signal: AbortSignal): Promise<void> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  await new Promise<void>((resolve, reject) => {
    const socket = connect({ host, port, signal });
    socket.setTimeout(10_000, () => socket.destroy(Object.assign(new Error('no answer within 10 s'), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (signal.aborted) return reject(new LifeboatError('Cancelled', `connecting to the influxdb RPC service ${address} was cancelled`, false));
      reject(
        new LifeboatError(
          'Unreachable',
          `the influxdb RPC service at ${address} (target ${target}) is not reachable (${err.code ?? err.message}): influxd backup and restore need it; check targets.${target}.rpcAddress and the server's bind-address (docs/influxdb.md)`,
          false,
        ),
      );
    });
  });
}
