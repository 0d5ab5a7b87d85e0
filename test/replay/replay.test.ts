import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBackupId } from '../../src/domain/names';
import { testEnv, withTaskQueue } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';
import { createPitrCluster } from '../helpers/pitr-cluster';
import { startHarness } from '../helpers/temporal';

/**
 * Histories recorded from real runs replay against today's workflow code: a
 * change that would break executions already running fails here. Record new
 * ones (after a deliberate, versioned change) with
 *   LIFEBOAT_RECORD_HISTORIES=1 npm test -- test/replay
 */
const DIR = join(__dirname, 'histories');
const recording = process.env.LIFEBOAT_RECORD_HISTORIES === '1';

(recording ? test : test.skip)('record histories of every workflow', async () => {
  const env = testEnv('replay');
  const config = withTaskQueue(env.config, env.taskQueue);
  const db = env.databases[0]!;
  await createDatabase(config, db);
  await seedApp(config, db, 20);
  const h = await startHarness(config);
  const ids: string[] = [];
  const run = async (type: string, input: unknown, then?: (handle: { signal: (s: string, a: unknown) => Promise<void> }) => Promise<void>) => {
    const workflowId = `${type}/replay/${randomBytes(3).toString('hex')}`;
    const handle = await h.client.workflow.start(type, { taskQueue: h.taskQueue, workflowId, args: [input] });
    await then?.(handle);
    await handle.result().catch(() => undefined);
    ids.push(workflowId);
    return workflowId;
  };
  try {
    const backupId = makeBackupId(new Date(), randomBytes(2).toString('hex'));
    await run('backupWorkflow', { targets: ['app-pg'], backupId });
    await run('verifyWorkflow', { backupId });
    await run('restoreWorkflow', { backupId }, async (handle) => {
      await new Promise((r) => setTimeout(r, 1000));
      await handle.signal('approve', { by: 'replay' });
    });
    await run('restoreWorkflow', { backupId: '20200101T000000Z-0000', yes: true });
    await run('pruneWorkflow', { dryRun: true });
    const drill = await run('drillWorkflow', { mode: 'in-place' });
    ids.push(`${drill}/backup`, `${drill}/restore`, `lock/${config.schedules!.idPrefix}/app-pg`);
    // PITR on a cluster of the recording's own: a full backup, a restore to a time between two batches, a drill.
    const cluster = await createPitrCluster(env);
    const p = await startHarness(withTaskQueue(cluster.config, `${env.taskQueue}-pitr`));
    try {
      const pitr = async (type: string, input: unknown) => {
        const workflowId = `${type}/replay/${randomBytes(3).toString('hex')}`;
        await p.client.workflow.execute(type, { taskQueue: p.taskQueue, workflowId, args: [input] });
        ids.push(workflowId);
      };
      await pitr('pitrBackupWorkflow', { target: cluster.target, type: 'full' });
      await cluster.query('CREATE TABLE batches AS SELECT 1 AS id');
      const [{ t }] = (await cluster.query<{ t: string }>(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`)) as [{ t: string }];
      await new Promise((r) => setTimeout(r, 1500));
      await cluster.query('INSERT INTO batches VALUES (2)');
      await pitr('pitrRestoreWorkflow', { target: cluster.target, toTime: t, yes: true });
      await pitr('pitrDrillWorkflow', { target: cluster.target });
    } finally {
      await p.stop();
      await cluster.destroy();
    }
    // The stock CLI writes the JSON form that historyFromJSON reads.
    const temporal = join(process.env.LIFEBOAT_CACHE_DIR ?? join(homedir(), '.cache/lifeboat'), 'bin/temporal');
    for (const f of readdirSync(DIR)) if (f.endsWith('.json')) unlinkSync(join(DIR, f));
    for (const id of ids) {
      const json = execFileSync(temporal, ['workflow', 'show', '--address', config.temporal.address, '--workflow-id', id, '--output', 'json'], { encoding: 'utf8' });
      // The workflow id goes with the history: the drill names its children after its own id.
      writeFileSync(join(DIR, `${id.replace(/[^a-z0-9]+/gi, '-')}.json`), `${JSON.stringify({ workflowId: id, history: JSON.parse(json) })}\n`);
    }
  } finally {
    await h.stop();
    await dropDatabase(config, db);
  }
});

(recording ? test.skip : test)("recorded histories replay against today's workflows", async () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));
  expect(files.length).toBeGreaterThanOrEqual(12);
  const histories = files.map((f) => {
    const { workflowId, history } = JSON.parse(readFileSync(join(DIR, f), 'utf8')) as { workflowId: string; history: unknown };
    return { workflowId, history: historyFromJSON(history) };
  });
  const failures: string[] = [];
  for await (const r of Worker.runReplayHistories({ workflowsPath: require.resolve('../../src/workflows'), replayName: 'lifeboat-replay' }, histories)) {
    if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
  }
  expect(failures).toEqual([]);
});
