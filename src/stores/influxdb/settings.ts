import { tmpdir } from 'node:os';
import { z } from 'zod';
import { parseTargetSettings, type SecretRef, type TargetConfig } from '../../config';
import { name, path, secretRef, text, type SchemaContext } from '../../config/fields';
import { LifeboatError } from '../../errors';

export interface InfluxdbSettings {
  /** HTTP API, e.g. `http://127.0.0.1:8086`: scheme, host and port only. */
  url: string;
  /** Omit both user and password for a server without `auth-enabled`. */
  user?: string;
  password?: SecretRef;
  /** The RPC service `influxd backup`/`restore` talk to (the server's `bind-address`), `host:port`. */
  rpcAddress: string;
  databases: string[];
  drillDatabase: string;
  /** The `influxd` binary that runs `backup`/`restore` (default: `influxd` on PATH). */
  influxd: string;
  /** Where the private spool folders are made (default: the OS temp folder). */
  spoolDir: string;
}

/** The RPC service's default port (`bind-address = "127.0.0.1:8088"`). */
export const DEFAULT_RPC_PORT = 8088;

/**
 * A URL without credentials, query, fragment or path: credentials in a URL end
 * up in the logs of every proxy and of the server itself.
 */
const serverUrl = () =>
  text()
    .refine((v) => URL.canParse(v), 'is not a URL')
    .refine((v) => /^https?:$/.test(new URL(v).protocol), 'must start with http:// or https://')
    .refine((v) => !new URL(v).username && !new URL(v).password, 'must not contain credentials: use the user and password settings (password as { file } or { env })')
    .refine((v) => !new URL(v).search && !new URL(v).hash, 'must not have a query string or fragment')
    .refine((v) => ['/', ''].includes(new URL(v).pathname), 'must be scheme://host:port, without a path')
    .transform((v) => v.replace(/\/+$/, ''));

/** `host:port` or `[v6]:port`, as `influxd backup -host` takes it. */
const hostPort = () =>
  text().refine((v) => {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
    return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
  }, 'must be host:port, e.g. 127.0.0.1:8088');

/** An influxdb target's settings (docs/influxdb.md). */
export const influxdbSettings = (c: SchemaContext) => ({
  url: serverUrl().default('http://127.0.0.1:8086').meta({ description: 'HTTP API: scheme, host and port only' }),
  user: text().optional().meta({ description: 'HTTP user (an admin: see docs/influxdb.md); omit with password for a server without auth' }),
  password: secretRef(c).optional(),
  rpcAddress: hostPort().optional().meta({ description: "the server's RPC service (bind-address) used by influxd backup/restore; default: the url's host, port 8088" }),
  databases: z.array(name()).min(1, 'must list at least one database').meta({ description: 'databases to back up, each its own artifact' }),
  drillDatabase: name().optional().meta({ description: 'database the drill seeds its markers in (default: the first)' }),
  influxd: path(c).optional().meta({ description: 'the influxd binary (1.5 or newer) for backup -portable / restore -portable; default: influxd on PATH' }),
  spoolDir: path(c).optional().meta({ description: 'where backups and restores spool the portable backup folder (default: the OS temp folder)' }),
});

export function parseInfluxdbSettings(file: string, t: Pick<TargetConfig, 'name' | 'settings'>): InfluxdbSettings {
  const s = parseTargetSettings(file, t, influxdbSettings);
  const at = `config ${file}: 'targets.${t.name}`;
  if ((s.user === undefined) !== (s.password === undefined)) {
    throw new LifeboatError('ConfigError', `${at}' needs both user and password, or neither (for a server without auth-enabled)`);
  }
  const drillDatabase = s.drillDatabase ?? s.databases[0]!;
  if (!s.databases.includes(drillDatabase)) {
    throw new LifeboatError('ConfigError', `${at}.drillDatabase' is '${drillDatabase}', which is not one of its databases (${s.databases.join(', ')}): the drill restores it from the backup`);
  }
  // The RPC service listens on the same host as the HTTP API unless told otherwise.
  const rpcAddress = s.rpcAddress ?? `${new URL(s.url).hostname}:${DEFAULT_RPC_PORT}`;
  return { url: s.url, user: s.user, password: s.password, rpcAddress, databases: s.databases, drillDatabase, influxd: s.influxd ?? 'influxd', spoolDir: s.spoolDir ?? tmpdir() };
}
