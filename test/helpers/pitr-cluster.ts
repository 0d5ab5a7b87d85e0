import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { stringify } from 'yaml';
import type { Config, TargetConfig } from '../../src/config';
import { freePort } from '../../src/stores/child';
import { archiveCommand, pitrPaths } from '../../src/stores/postgres/pitr';
import type { TestEnv } from './env';
import { uniq } from './env';

const run = promisify(execFile);
const PG_BIN = '/usr/lib/postgresql/15/bin';

/**
 * A PostgreSQL cluster of the test's own (initdb into a temp folder, own port,
 * archiving into its own stanza under the test's repository prefix), so PITR
 * tests never stop, restore or archive the stack's shared server. It runs as
 * the `postgres` user when the tests run as root, like the stack's server.
 */
export interface PitrCluster {
  target: string;
  dir: string;
  dataDir: string;
  port: number;
  /** The target's config entry (kind postgres with a `pitr:` section). */
  targetConfig: TargetConfig;
  config: Config;
  /** A query on the cluster (or on another server of it, e.g. a scratch copy, by `port`). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], database?: string, port?: number): Promise<T[]>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** The postmaster's pid, or undefined when it is not running. */
  pid(): Promise<number | undefined>;
  /** A lifeboat.yaml for processes the test starts (worker, CLI). */
  writeConfigFile(file: string, extra?: Record<string, unknown>): Promise<void>;
  destroy(): Promise<void>;
}


const asPg = (cmd: string, args: string[]) => (process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));

export async function createPitrCluster(env: TestEnv, opts: { taskQueue?: string; name?: string; compress?: string } = {}): Promise<PitrCluster> {
  const base = env.config.targets.get('app-pg')!;
  const passwordFile = (base.settings.password as { file: string }).file;
  const state = process.env.LIFEBOAT_STATE_DIR ?? dirname(dirname(passwordFile));
  const target = opts.name ?? uniq('pitr').replace(/_/g, '-');
  const dir = await mkdtemp(join(tmpdir(), 'lb-pitr-'));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'run');
  const port = await freePort();
  const pitr = {
    dataDir,
    socketDir,
    configDir: join(dir, 'pgbackrest'),
    cipherPassphrase: { file: join(state, 'secrets', 'pgbackrest-cipher-pass') },
    s3Endpoint: 'https://127.0.0.1:19443',
    caFile: join(state, 'tls', 'ca.crt'),
    compress: opts.compress ?? 'lz4',
    archiveWaitSeconds: 60,
  };
  const settings = { kind: 'postgres', host: '127.0.0.1', port, user: 'lifeboat', password: { file: passwordFile }, databases: ['app'], globals: false, pitr, ...(opts.taskQueue ? { taskQueue: opts.taskQueue } : {}) };
  const targetConfig: TargetConfig = { name: target, kind: 'postgres', settings, ...(opts.taskQueue ? { taskQueue: opts.taskQueue } : {}) };
  const config: Config = { ...env.config, targets: new Map([[target, targetConfig]]) };

  if (process.getuid?.() === 0) {
    await chown(dir, (await stat('postgres')).uid, (await stat('postgres')).gid);
  }
  await chmod(dir, 0o700);
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, await readFile(passwordFile, 'utf8'), { mode: 0o600 });
  if (process.getuid?.() === 0) await chown(pwfile, (await stat('postgres')).uid, (await stat('postgres')).gid);
  await asPg(`${PG_BIN}/initdb`, ['-D', dataDir, '-U', 'lifeboat', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8']);
  await rm(pwfile);
  await asPg('mkdir', ['-p', socketDir]);
  const spec = { target, pitr: { ...pitr, configDir: pitr.configDir } } as Parameters<typeof archiveCommand>[0];
  await asPg('sh', [
    '-c',
    `cat >> '${dataDir}/postgresql.conf' <<'EOF'
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${socketDir}'
wal_level = replica
archive_mode = on
archive_command = '${archiveCommand(spec)}'
shared_buffers = 32MB
EOF`,
  ]);
  const log = join(dir, 'postgres.log');
  const cluster: PitrCluster = {
    target,
    dir,
    dataDir,
    port,
    targetConfig,
    config,
    async query<T>(sql: string, params: unknown[] = [], database = 'app', at = port) {
      const c = new Client({ host: '127.0.0.1', port: at, user: 'lifeboat', password: (await readFile(passwordFile, 'utf8')).trim(), database });
      await c.connect();
      try {
        return (await c.query(sql, params)).rows as T[];
      } finally {
        await c.end();
      }
    },
    async start() {
      await asPg(`${PG_BIN}/pg_ctl`, ['-D', dataDir, '-l', log, '-w', 'start']);
    },
    async stop() {
      await asPg(`${PG_BIN}/pg_ctl`, ['-D', dataDir, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    },
    async pid() {
      try {
        const pid = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
        process.kill(pid, 0);
        return pid;
      } catch {
        return undefined;
      }
    },
    async writeConfigFile(file, extra = {}) {
      const raw = env.config;
      const repo = raw.repository.kind === 's3' ? { ...raw.repository } : raw.repository;
      const doc = {
        repository: repo,
        encryption: raw.encryption ?? 'none',
        targets: { [target]: settings },
        ...extra,
        // Extra temporal settings (e.g. heartbeatTimeoutSeconds) add to the test's own.
        temporal: { address: raw.temporal.address, namespace: raw.temporal.namespace, taskQueue: env.taskQueue, searchAttributes: raw.temporal.searchAttributes, ...(extra.temporal as object) },
      };
      await writeFile(file, stringify(doc, (_k, v: unknown) => (v instanceof Map ? Object.fromEntries(v) : v)));
    },
    async destroy() {
      await asPg(`${PG_BIN}/pg_ctl`, ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      const conf = pitrPaths({ target, pitr: pitr as never }).config;
      await asPg('pgbackrest', [`--config=${conf}`, `--stanza=${target}`, 'stop']).catch(() => undefined);
      await asPg('pgbackrest', [`--config=${conf}`, `--stanza=${target}`, '--force', 'stanza-delete']).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  await cluster.query('CREATE DATABASE app', [], 'postgres');
  return cluster;
}

/** uid and gid of a system user, from /etc/passwd. */
async function stat(user: string): Promise<{ uid: number; gid: number }> {
  const line = (await readFile('/etc/passwd', 'utf8')).split('\n').find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user}`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}
