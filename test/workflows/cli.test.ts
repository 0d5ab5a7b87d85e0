import { Client, Connection } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { lifeboat as run } from '../helpers/cli';
import { stackConfig, testEnv } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';

/**
 * The lifeboat command as an operator runs it: the built CLI (npm run build),
 * a config file, a worker inside the process (--with-worker).
 */
const env = testEnv('cli');
const db = env.databases[0]!;
let dir: string;
let configFile: string;

const lifeboat = (...args: string[]) => run(configFile, ...args);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-cli-'));
  configFile = join(dir, 'lifeboat.yaml');
  const base = stackConfig();
  const pg = base.targets.get('app-pg')!.settings;
  const repo = env.config.repository;
  await writeFile(
    configFile,
    stringify({
      temporal: { ...base.temporal, taskQueue: env.taskQueue },
      repository: repo,
      encryption: base.encryption,
      signing: base.signing,
      targets: { 'app-pg': { ...pg, databases: [db] } },
      schedules: { idPrefix: env.config.schedules!.idPrefix },
    }),
  );
  await createDatabase(env.config, db);
  await seedApp(env.config, db, 50);
});

afterAll(async () => {
  await dropDatabase(env.config, db);
  await rm(dir, { recursive: true, force: true });
});

test('lifeboat drill --json prints one JSON object with the markers and times of each store', async () => {
  const r = await lifeboat('drill', '--json', '--with-worker', '--mode', 'in-place');
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out).toMatchObject({
    ok: true,
    workflowId: expect.stringMatching(/^drill\/\d{8}T\d{6}Z-[0-9a-f]{4}$/),
    uiUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:18233\/namespaces\/default\/workflows\/drill%2F/),
    stores: [{ target: 'app-pg', kind: 'postgres', markers: { expected: 137, found: 137 } }],
  });
  expect(out.stores[0].backupSeconds).toBeGreaterThan(0);
  expect(out.stores[0].restoreSeconds).toBeGreaterThan(0);
  expect(out.stores[0].artifactBytes).toBeGreaterThan(0);

  // The run is tagged for the Web UI and `temporal workflow list --query`.
  const connection = await Connection.connect({ address: env.config.temporal.address });
  try {
    const d = await new Client({ connection }).workflow.getHandle(out.workflowId).describe();
    const sa = (name: string) => d.typedSearchAttributes.get(defineSearchAttributeKey(name, SearchAttributeType.KEYWORD));
    const list = (name: string) => d.typedSearchAttributes.get(defineSearchAttributeKey(name, SearchAttributeType.KEYWORD_LIST));
    expect([sa('LifeboatOperation'), list('LifeboatTarget'), list('LifeboatKind'), sa('LifeboatOutcome')]).toEqual(['drill', ['app-pg'], ['postgres'], 'success']);
  } finally {
    await connection.close();
  }

  const ls = await lifeboat('ls', '--json');
  expect(JSON.parse(ls.stdout).backups).toEqual([expect.objectContaining({ backupId: out.backupId, target: 'app-pg', kind: 'postgres', encryption: 'age' })]);
});

test('lifeboat backup and restore --yes, in words for people', async () => {
  const b = await lifeboat('backup', 'app-pg', '--with-worker');
  expect(b.code).toBe(0);
  const id = /^backup (\S+) ok$/m.exec(b.stdout)?.[1];
  expect(id).toBeDefined();
  const plan = await lifeboat('restore', id!, '--target', 'app-pg', '--dry-run', '--with-worker');
  expect(plan.stdout).toContain(`restore plan for ${id} (dry run: nothing was changed)`);
  expect(plan.stdout).toMatch(new RegExp(`^    ${db}  from ${db}\\.dump\\.zst\\.age  `, 'm'));
  const r = await lifeboat('restore', id!, '--target', 'app-pg', '--only', db, '--as', `${db}_copy`, '--yes', '--with-worker');
  expect(r.stdout).toContain(`restore of ${id} ok`);
  expect(r.stdout).toContain(`${db} -> ${db}_copy`);
  await dropDatabase(env.config, `${db}_copy`);
});

test('a restore of an unknown backup exits 3 (not found) and says so', async () => {
  const r = await lifeboat('restore', '20200101T000000Z-beef', '--yes', '--with-worker', '--json');
  expect(r.code).toBe(3);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, type: 'BackupNotFound', error: expect.stringContaining("backup '20200101T000000Z-beef' does not exist") });
});

test('a config that cannot be read is a usage error that says where to look', async () => {
  const r = await run(join(dir, 'nope.yaml'), 'ls');
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(`cannot read config ${join(dir, 'nope.yaml')} (ENOENT)`);
});
