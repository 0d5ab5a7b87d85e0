import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { version } from '../../package.json';
import { lifeboat as run } from '../helpers/cli';
import { writeConfigFile } from '../helpers/config-file';
import { testEnv } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';

/**
 * The CLI never hangs and always tells the truth: no worker, Ctrl-C,
 * SIGTERM with --with-worker, typos, exit codes, a closed pipe.
 */
jest.setTimeout(240_000);
const env = testEnv('clibehaviour');
const db = env.databases[0]!;
const BIN = join(__dirname, '../../bin/lifeboat');
let dir: string;
let configFile: string;
let client: Client;
let connection: Connection;

const lifeboat = (...args: string[]) => run(configFile, ...args);

/** Starts the CLI as a process, collecting its output; `lines` resolves when stderr has a line matching `re`. */
function launch(args: string[]): { child: ChildProcess; out: () => string; err: () => string; waitFor(re: RegExp): Promise<void>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, '--config', configFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    out: () => out,
    err: () => err,
    exit,
    async waitFor(re) {
      for (let i = 0; i < 1200 && !re.test(err); i++) await new Promise((r) => setTimeout(r, 100));
      if (!re.test(err)) throw new Error(`never saw ${re} in: ${err}`);
    },
  };
}

async function workflowsOn(taskQueue: string): Promise<number> {
  let n = 0;
  for await (const w of client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) if (w) n++;
  return n;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-clib-'));
  configFile = await writeConfigFile(dir, env);
  await createDatabase(env.config, db);
  await seedApp(env.config, db, 200);
  connection = await Connection.connect({ address: env.config.temporal.address });
  client = new Client({ connection });
});

afterAll(async () => {
  await connection?.close();
  await dropDatabase(env.config, db);
  await rm(dir, { recursive: true, force: true });
});

test('--version prints the version', async () => {
  const r = await lifeboat('--version');
  expect(r.code).toBe(0);
  expect(r.stdout.trim()).toBe(version);
});

test('with no worker on the task queue, nothing is started and the CLI says so plainly (exit 6)', async () => {
  const r = await lifeboat('backup', 'app-pg');
  expect(r.code).toBe(6);
  expect(r.stderr).toContain(`lifeboat: no worker polls task queue '${env.taskQueue}' (the default queue: lifeboat worker) at ${env.config.temporal.address}; nothing was started. Start one with 'lifeboat worker', or run this command with --with-worker`);
  expect(await workflowsOn(env.taskQueue)).toBe(0);
});

test('usage errors, typos and unknown names exit 2 with a suggestion; missing things exit 3', async () => {
  const typo = await lifeboat('backup', 'app-gp');
  expect(typo.code).toBe(2);
  expect(typo.stderr).toContain("target 'app-gp' is not in");
  expect(typo.stderr).toContain("(did you mean 'app-pg'?)");

  const timeout = await lifeboat('restore', '20200101T000000Z-beef', '--approval-timeout', 'abc');
  expect(timeout.code).toBe(2);
  expect(timeout.stderr).toContain("'abc' is not a whole number of seconds");
  expect((await lifeboat('restore', '20200101T000000Z-beef', '--approval-timeout', '-5')).code).toBe(2);
  expect((await lifeboat('restroe', 'x')).code).toBe(2);

  const approve = await lifeboat('approve', 'restore/app-pg/20200101T000000Z-beef');
  expect(approve.code).toBe(3);
  expect(approve.stderr).toContain('no running workflow restore/app-pg/20200101T000000Z-beef');

  const bad = join(dir, 'typo.yaml');
  await writeFile(bad, stringify({ temporal: { taskQeue: 'x' }, repository: { kind: 'local', path: dir }, encryption: 'none', targets: { a: { kind: 'postgres', user: 'u', databses: ['d'] } } }));
  const cfg = await run(bad, 'ls');
  expect(cfg.code).toBe(2);
  expect(cfg.stderr).toContain("'temporal' has unknown setting 'taskQeue' (did you mean 'taskQueue'?)");
  expect(cfg.stderr).toContain("'targets.a' has unknown setting 'databses' (did you mean 'databases'?)");
});

test('lifeboat config check prints what it resolved and checks secret files; config schema is JSON Schema', async () => {
  const ok = await lifeboat('config', 'check');
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain(`config ${configFile}: ok`);
  expect(ok.stdout).toContain('target      app-pg (postgres)');

  const loose = join(dir, 'loose-secret');
  await writeFile(loose, 'hunter2', { mode: 0o644 });
  const leaky = join(dir, 'leaky.yaml');
  await writeFile(leaky, stringify({ repository: { kind: 'local', path: dir }, encryption: 'none', targets: { a: { kind: 'postgres', user: 'u', password: { file: loose }, databases: ['d'] } } }));
  const r = await run(leaky, 'config', 'check');
  expect(r.code).toBe(2);
  expect(r.stdout).toContain(`secret file ${loose} is readable by others (mode 0644); run: chmod 600 ${loose}`);

  const schema = JSON.parse((await lifeboat('config', 'schema')).stdout);
  expect(schema.properties.targets).toBeDefined();
  expect(schema.properties.temporal.properties.taskQueue).toBeDefined();
});

test('a closed pipe ends the output quietly', async () => {
  const p = spawn(`node ${BIN} --config ${configFile} --help | head -1`, { shell: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  await new Promise((r) => p.on('exit', r));
  expect(err).toBe('');
});

test('Ctrl-C while waiting says the run goes on and how to follow or cancel it (exit 130); the run finishes in the worker', async () => {
  const worker = launch(['worker']);
  await worker.waitFor(/lifeboat worker on task queue/);
  try {
    const backup = launch(['backup', 'app-pg']);
    await backup.waitFor(/started backupWorkflow (\S+)/);
    const id = /started backupWorkflow (\S+)/.exec(backup.err())![1]!;
    backup.child.kill('SIGINT');
    expect(await backup.exit).toBe(130);
    expect(backup.err()).toContain(`interrupted: stopped waiting for ${id}`);
    expect(backup.err()).toContain('the run goes on in the worker');
    expect(backup.err()).toContain(`cancel it: lifeboat cancel ${id}`);
    await client.workflow.getHandle(id).result();
  } finally {
    // A worker told to stop hands its tasks back and exits cleanly.
    worker.child.kill('SIGTERM');
    expect(await worker.exit).toBe(0);
  }
});

test('SIGTERM to a --with-worker run shuts it down within seconds and hands the run back; the next worker finishes it', async () => {
  const drill = launch(['drill', '--mode', 'in-place', '--with-worker']);
  await drill.waitFor(/started drillWorkflow (\S+)/);
  const id = /started drillWorkflow (\S+)/.exec(drill.err())![1]!;
  await new Promise((r) => setTimeout(r, 1500));
  drill.child.kill('SIGTERM');
  expect(await drill.exit).toBe(143);
  expect(drill.err()).toContain('the run is not cancelled: it waits for a worker and goes on when one starts');
  const worker = launch(['worker']);
  try {
    const r = (await client.workflow.getHandle(id).result()) as { ok: boolean };
    expect(r.ok).toBe(true);
  } finally {
    worker.child.kill('SIGTERM');
    await worker.exit;
  }
});

test('runs that succeed always exit 0', async () => {
  for (let i = 0; i < 3; i++) {
    const r = await lifeboat('backup', 'app-pg', '--with-worker');
    expect(r.stderr).not.toContain('Channel has been shut down');
    expect(r.code).toBe(0);
  }
});
