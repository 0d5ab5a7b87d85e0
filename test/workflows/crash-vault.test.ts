import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { WorkflowHandle } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { S3RepositoryConfig } from '../../src/config';
import type { DrillResult } from '../../src/domain/plan';
import { openRepository } from '../../src/repo';
import { listBackups } from '../../src/repo/catalog';
import { s3Client } from '../../src/repo/s3';
import { serverPids } from '../../src/stores/vault/server';
import { adminClient, removePrefix } from '../contract/bucket-kind';
import { getSecret, putSecret, serversBelow, startTestBao, vaultSettingsFor, type TestBao } from '../contract/vault-kind';
import { CRASH_HEARTBEAT_TIMEOUT, CrashWorker } from '../helpers/crash';
import { testEnv } from '../helpers/env';

/**
 * Kill -9 a real worker process in the middle of a Vault backup and of a
 * Vault restore (into a temporary server, and into the server itself), start
 * a new one, and show the drill completes with every marker, nothing
 * half-written in the repository, and no temporary server left behind.
 * The OpenBao is this file's own: restores replace a whole server.
 */
jest.setTimeout(900_000);

const env = testEnv('crashvault');
const T = 'secrets-vault';
const SECRETS = 90;
let bao: TestBao;
let dir: string;
let configFile: string;
const workers = new CrashWorker(() => configFile);

async function drill(mode: 'scratch' | 'in-place'): Promise<{ id: string; handle: WorkflowHandle }> {
  const id = `drill/${env.taskQueue}/${randomBytes(3).toString('hex')}`;
  return { id, handle: await workers.client.workflow.start('drillWorkflow', { taskQueue: env.taskQueue, workflowId: id, args: [{ mode }] }) };
}

async function expectCleanRepository(backupId: string): Promise<void> {
  const repo = await openRepository(env.config);
  expect((await repo.list(`${T}/${backupId}`)).map((e) => e.name).sort()).toEqual(['manifest.json', 'manifest.json.sig', 'snapshot.snap.age', 'snapshot.snap.age.blocks', 'snapshot.snap.age.sha256']);
  const cfg = env.config.repository as S3RepositoryConfig;
  const open = await (await s3Client(cfg)).send(new ListMultipartUploadsCommand({ Bucket: cfg.bucket, Prefix: `${cfg.prefix}/` }));
  expect(open.Uploads ?? []).toEqual([]);
}

const scratch = () => join(bao.dir, 'scratch');

beforeAll(async () => {
  bao = await startTestBao('crashvault');
  // Enough secrets (random, so gzip cannot shrink them much) that a snapshot takes a few seconds to stream.
  for (let i = 0; i < SECRETS; i++) await putSecret(bao, `bulk/${i}`, { blob: randomBytes(450 * 1024).toString('base64') });
  await putSecret(bao, 'app/db', { password: 'kept' });
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-crashvault-'));
  const base = parse(await readFile(process.env.LIFEBOAT_CONFIG!, 'utf8')) as Record<string, Record<string, unknown>>;
  configFile = join(dir, 'lifeboat.yaml');
  const repository = { ...base.repository, prefix: (env.config.repository as S3RepositoryConfig).prefix };
  await writeFile(configFile, stringify({ ...base, temporal: { ...base.temporal, taskQueue: env.taskQueue, ...CRASH_HEARTBEAT_TIMEOUT }, repository, targets: { [T]: vaultSettingsFor(bao) }, schedules: { idPrefix: env.config.schedules!.idPrefix } }));
  await workers.open(env.config.temporal);
});

afterAll(async () => {
  await workers.close();
  await bao?.stop();
  await rm(dir, { recursive: true, force: true });
  const repo = env.config.repository as S3RepositoryConfig;
  await removePrefix(await adminClient(repo), repo.bucket, `${repo.prefix}/`);
});

test('scratch drill killed mid-snapshot and once its temporary server runs: completes, and no temporary server is left', async () => {
  const { id, handle } = await drill('scratch');
  await workers.crashAt(`${id}/backup`, 'backupItem', (hb) => hb.stage === 'snapshot' || hb.stage === 'upload', async () => {
    // Killed before the snapshot was stored: no backup of the target is complete.
    expect(await listBackups(await openRepository(env.config), [T])).toEqual([]);
  });
  await workers.crashAt(`${id}/restore`, 'restoreItem', (hb) => hb.stage === 'restore' || hb.stage === 'unseal', async () => {
    // The dead worker's temporary server is still running: the retry must stop it and start afresh.
    expect(await serversBelow(scratch())).toHaveLength(1);
  });
  const r = (await handle.result()) as DrillResult;
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers).toMatchObject({ expected: 61, found: 61, unexpected: 0 });
  expect(await serversBelow(scratch())).toEqual([]);
  expect(await readdir(join(scratch(), T))).toEqual([]);
  expect(await serverPids(bao.configFile)).toHaveLength(1);
  await expectCleanRepository(r.backupId);
});

test('in-place drill killed while snapshot-force streams into the server: the retry restores it, every marker and secret is there', async () => {
  const { id, handle } = await drill('in-place');
  await workers.crashAt(`${id}/restore`, 'restoreItem', (hb) => hb.stage === 'restore');
  const r = (await handle.result()) as DrillResult;
  expect(r.ok).toBe(true);
  expect(r.stores[0]!.markers).toMatchObject({ expected: 61, found: 61, unexpected: 0 });
  expect(await getSecret(bao, 'app/db')).toEqual({ password: 'kept' });
  expect(await getSecret(bao, `bulk/${SECRETS - 1}`)).toHaveProperty('blob');
  await expectCleanRepository(r.backupId);
});
