/**
 * The PITR part of `npm run bench`: a pgBackRest full backup and a restore to
 * a time of a pgbench database, orchestrated (pitrBackupWorkflow,
 * pitrRestoreWorkflow through Temporal, run by a real worker process) against
 * bare `pgbackrest backup` / `pgbackrest restore` by hand, on a PostgreSQL
 * cluster of the benchmark's own (never the stack's server). Both restores
 * start from an empty data directory (the orchestrated one's stopServer hook
 * empties it), so both restore every file. See docs/benchmarks.md.
 */
import { Client, Connection } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/load';
import type { PitrBackupResult, PitrRestoreResult } from '../src/domain/pitr';
import { pitrSpec } from '../src/activities/pitr';
import { PitrEngine, pitrPaths } from '../src/stores/postgres/pitr';
import { switchAndWaitArchived } from '../src/stores/postgres/pitr/server';
import { createPitrCluster, type PitrCluster } from '../test/helpers/pitr-cluster';
import { round, run, say, startWorkerProcess, timed, type WorkerProcess } from './lib';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const asPg = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', cmd, ...args], { env }) : run(cmd, args, { env });

export interface PitrBenchResult {
  scale: number;
  dbBytes: number;
  backup: { bareSeconds: number; orchestratedSeconds: number; ratio: number; activitySeconds: Record<string, number> };
  restore: { bareSeconds: number; orchestratedSeconds: number; ratio: number; activitySeconds: Record<string, number> };
  storedBytes: number;
}

async function activitySeconds(client: Client, workflowId: string): Promise<Record<string, number>> {
  const hist = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, { type: string; at: number }>();
  const out: Record<string, number> = {};
  const at = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }) => Number(e.eventTime?.seconds ?? 0) + (e.eventTime?.nanos ?? 0) / 1e9;
  for (const e of hist.events ?? []) {
    if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), { type: e.activityTaskScheduledEventAttributes.activityType!.name!, at: at(e) });
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    if (done) {
      const s = scheduled.get(String(done.scheduledEventId))!;
      out[s.type] = round((out[s.type] ?? 0) + at(e) - s.at, 2);
    }
  }
  return out;
}

/** Waits until the cluster takes a write again (recovery ended); fails if its server stopped (e.g. the target was not reached). */
async function waitWritable(c: PitrCluster, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const [r] = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r', [], 'postgres');
      if (r && !r.r) return;
    } catch (err) {
      if ((await c.pid()) === undefined || Date.now() > deadline) {
        const log = readFileSync(join(c.dir, 'postgres.log'), 'utf8').split('\n').filter((l) => /FATAL|PANIC|ERROR|recovery/.test(l));
        throw new Error(`the restored server did not recover: ${(err as Error).message}; its log: ${log.slice(-6).join(' | ')}`);
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function benchPitr(o: { scale: number; stackConfigFile?: string; workDir?: string }): Promise<PitrBenchResult> {
  const stack = loadConfig(o.stackConfigFile ?? process.env.LIFEBOAT_CONFIG!);
  const runId = randomBytes(4).toString('hex');
  const taskQueue = `lifeboat-bench-pitr-${runId}`;
  const base = stack.repository.kind === 's3' ? stack.repository.prefix : 'lifeboat';
  const repository = stack.repository.kind === 's3' ? { ...stack.repository, prefix: `${base.split('/')[0]}-bench/pitr-${runId}` } : stack.repository;
  const env = { config: { ...stack, repository }, taskQueue, databases: ['app'] };
  say(`pitr: creating a cluster of its own and a pgbench database (scale ${o.scale})`);
  const cluster = await createPitrCluster(env, { name: `bench-pitr-${runId}` });
  const paths = pitrPaths({ target: cluster.target, pitr: cluster.targetConfig.settings.pitr as never });
  // The same config and passfile lifeboat writes (the warm-up backup below writes them).
  const pgbr = (args: string[]) => asPg('pgbackrest', [`--config=${paths.config}`, `--stanza=${cluster.target}`, ...args], { PGPASSFILE: paths.passfile });
  const configFile = join(cluster.dir, 'lifeboat.yaml');
  // The orchestrated restore's stopServer hook empties the data directory, as the bare side does by hand.
  const empty = `${PG_BIN}/pg_ctl -D ${cluster.dataDir} -m fast -w stop && find ${cluster.dataDir} -mindepth 1 -delete`;
  let worker: WorkerProcess | undefined;
  let connection: Connection | undefined;
  // Interrupted: the cluster, its stanza and the worker go with us.
  const onSignal = (sig: NodeJS.Signals) => {
    say(`${sig}: removing the PITR cluster and its stanza`);
    void Promise.allSettled([worker?.stop(5000), cluster.destroy()]).then(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, onSignal);
  try {
    const passfile = join(cluster.dir, 'pgpass');
    const password = readFileSync((cluster.targetConfig.settings.password as { file: string }).file, 'utf8').trim();
    writeFileSync(passfile, `*:${cluster.port}:*:lifeboat:${password}\n`, { mode: 0o600 });
    await run(join(PG_BIN, 'pgbench'), ['-i', '-s', String(o.scale), '-q', '--host', '127.0.0.1', '--port', String(cluster.port), '--username', 'lifeboat', 'app'], { env: { PGPASSFILE: passfile } });
    const [{ n }] = (await cluster.query<{ n: string }>("SELECT pg_database_size('app')::text AS n")) as [{ n: string }];
    const settings = cluster.targetConfig.settings as Record<string, unknown>;
    const pitr = settings.pitr as Record<string, unknown>;
    const hook = (cmd: string) => [{ command: process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', 'sh', '-c', cmd] : ['sh', '-c', cmd], timeoutSeconds: 600 }];
    await cluster.writeConfigFile(configFile, {
      targets: { [cluster.target]: { ...settings, pitr: { ...pitr, stopServer: hook(empty), startServer: hook(`${PG_BIN}/pg_ctl -D ${cluster.dataDir} -l ${cluster.dir}/postgres.log start -W`) } } },
    });
    worker = await startWorkerProcess(configFile, taskQueue);
    connection = await Connection.connect({ address: stack.temporal.address });
    const client = new Client({ connection, namespace: stack.temporal.namespace });
    const wf = async <T>(type: string, input: unknown) => {
      const id = `${type}/bench/${randomBytes(3).toString('hex')}`;
      const t = await timed(() => client.workflow.execute(type, { taskQueue, workflowId: id, args: [input] }) as Promise<T>);
      return { ...t, id };
    };

    say('pitr: warm-up (stanza, first full backup)');
    await wf<PitrBackupResult>('pitrBackupWorkflow', { target: cluster.target, type: 'full' });
    say('pitr: bare pgbackrest backup --type=full');
    const bareBackup = await timed(() => pgbr(['--type=full', 'backup']));
    say('pitr: orchestrated full backup (pitrBackupWorkflow)');
    const orchBackup = await wf<PitrBackupResult>('pitrBackupWorkflow', { target: cluster.target, type: 'full' });

    // A target time after both backups, with the segment holding it archived.
    const [{ t }] = (await cluster.query<{ t: string }>(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`)) as [{ t: string }];
    const engine = new PitrEngine(pitrSpec(cluster.config, cluster.target));
    const ctx = { signal: new AbortController().signal, progress: () => undefined, log: { info: () => undefined, warn: () => undefined } };
    await switchAndWaitArchived(ctx, engine.conn, 'postgres', 300);
    const pgTarget = t.replace('T', ' ').replace('Z', '+00');

    say('pitr: bare stop, empty, pgbackrest restore --type=time, start, recovery');
    const bareRestore = await timed(async () => {
      await asPg('sh', ['-c', empty]);
      await pgbr([`--pg1-path=${cluster.dataDir}`, '--type=time', `--target=${pgTarget}`, '--target-action=promote', 'restore']);
      await cluster.start();
      await waitWritable(cluster);
    });
    say('pitr: orchestrated restore to the same time (pitrRestoreWorkflow)');
    const orchRestore = await wf<PitrRestoreResult>('pitrRestoreWorkflow', { target: cluster.target, toTime: t, yes: true });
    return {
      scale: o.scale,
      dbBytes: Number(n),
      backup: {
        bareSeconds: round(bareBackup.seconds, 2),
        orchestratedSeconds: round(orchBackup.seconds, 2),
        ratio: round(orchBackup.seconds / bareBackup.seconds, 3),
        activitySeconds: await activitySeconds(client, orchBackup.id),
      },
      restore: {
        bareSeconds: round(bareRestore.seconds, 2),
        orchestratedSeconds: round(orchRestore.seconds, 2),
        ratio: round(orchRestore.seconds / bareRestore.seconds, 3),
        activitySeconds: await activitySeconds(client, orchRestore.id),
      },
      storedBytes: orchBackup.value.repositoryBytes,
    };
  } finally {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.removeListener(sig, onSignal);
    await worker?.stop();
    await connection?.close();
    await cluster.destroy();
  }
}
