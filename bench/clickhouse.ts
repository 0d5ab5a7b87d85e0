/**
 * The ClickHouse part of the benchmark: the logical backup of one big table
 * through lifeboat's real pipeline (HTTP Native stream with its block
 * validator -> age -> SHA-256 -> multipart upload to the stack's MinIO) against
 * a bare `clickhouse-client … FORMAT Native > file` of the same table on the
 * same server. Target: lifeboat / bare <= 1.2.
 *
 *   npx tsc -p tsconfig.json --outDir /tmp/bench-build && node /tmp/bench-build/bench/clickhouse.js [rows]
 *
 * Needs the local stack (LIFEBOAT_CONFIG, LIFEBOAT_STATE_DIR: `eval "$(scripts/stack.sh env)"`).
 * The table is built once (INSERT … SELECT from system.numbers) and reused by later runs.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { resolveSecret } from '../src/config';
import { loadConfig, parseConfig } from '../src/config/load';
import { artifactKey, sidecarKey } from '../src/domain/layout';
import { makeBackupId } from '../src/domain/names';
import { openRepository } from '../src/repo';
import { storeArtifact } from '../src/repo/artifacts';
import type { StoreContext } from '../src/stores';
import { ClickhouseStore } from '../src/stores/clickhouse';
import { ClickhouseHttp } from '../src/stores/clickhouse/http';
import { DEFAULT_COMPRESSION } from '../src/domain/compression';
import { run as runText } from './lib';

const HTTP_URL = 'http://127.0.0.1:18123';
const NATIVE_PORT = '19010';
const DATABASE = 'lifeboat_bench';
const MIN_ROWS = 10_000_000;
const RUNS = 3;

export interface ClickhouseBenchResult {
  rows: number;
  /** Plaintext Native bytes of the table (what both sides read from the server). */
  bytes: number;
  /** Median seconds of RUNS timed runs, after one untimed warm-up of each side. */
  lifeboatSeconds: number;
  bareSeconds: number;
  ratio: number;
  /** The store alone: the same backup into a sink that discards the plaintext (no age, no upload). */
  storeOnlySeconds: number;
  storeOnlyRatio: number;
  /** The pipeline alone: the bare dump's file (same bytes) through age -> SHA-256 -> upload, no ClickHouse. */
  pipelineOnlySeconds: number;
  /** The stored artifact (zstd, then age) of the last lifeboat run, and `zstd -3` of the same Native bytes: the target is artifact <= 1.1x. */
  artifactBytes: number;
  zstdBytes: number;
  zstdRatio: number;
  /** Each timed run, for the spread (the stack shares its cores with everything else on the machine). */
  runs: Array<{ lifeboat: number; bare: number; storeOnly: number; pipelineOnly: number }>;
}

const say = (m: string) => process.stderr.write(`[bench clickhouse] ${m}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** `clickhouse-client` with its credentials in a private config file, never in argv. */
async function bareDump(configFile: string, query: string, out: string): Promise<void> {
  const child = spawn('clickhouse-client', ['--config-file', configFile, '--host', '127.0.0.1', '--port', NATIVE_PORT, '--query', query], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-4000)));
  const file = createWriteStream(out);
  const written = finished(file);
  child.stdout.pipe(file);
  const [code] = (await once(child, 'close')) as [number | null];
  await written;
  if (code !== 0) throw new Error(`clickhouse-client exited with code ${code}: ${err.trim()}`);
}

export async function benchClickhouse(opts: { rows: number }): Promise<ClickhouseBenchResult> {
  const rows = Math.max(opts.rows, MIN_ROWS);
  const configFile = process.env.LIFEBOAT_CONFIG;
  if (!configFile) throw new Error('LIFEBOAT_CONFIG is not set: eval "$(scripts/stack.sh env)" first');
  const config = loadConfig(configFile);
  const passwordFile = join(process.env.LIFEBOAT_STATE_DIR ?? dirname(configFile), 'secrets', 'clickhouse-password');
  const password = await resolveSecret({ file: passwordFile }, 'clickhouse password');
  const signal = new AbortController().signal;
  const http = new ClickhouseHttp({ url: HTTP_URL, user: 'lifeboat', password, target: 'bench-ch' });
  const sql = (q: string) => http.text({ sql: q, what: 'bench', signal });

  const table = `t_${rows}`;
  await sql(`CREATE DATABASE IF NOT EXISTS ${DATABASE}`);
  const have = Number((await sql(`SELECT count() FROM system.tables WHERE database = '${DATABASE}' AND name = '${table}'`)).trim()) === 1 ? Number((await sql(`SELECT count() FROM ${DATABASE}.${table}`)).trim()) : -1;
  if (have !== rows) {
    say(`building ${DATABASE}.${table} (${rows} rows)`);
    await sql(`DROP TABLE IF EXISTS ${DATABASE}.${table}`);
    await sql(`CREATE TABLE ${DATABASE}.${table} (id UInt64, at DateTime, user UInt32, kind Enum8('view' = 1, 'click' = 2, 'buy' = 3), value Float64, url String, tags Array(UInt16)) ENGINE = MergeTree PARTITION BY toYYYYMM(at) ORDER BY (user, at)`);
    const build = await timed(async () => {
      await sql(
        `INSERT INTO ${DATABASE}.${table} SELECT number, toDateTime('2024-01-01 00:00:00') + intDiv(number, 10), toUInt32(cityHash64(number) % 100000), toInt8(number % 3 + 1), number / 7, concat('/p/', toString(number % 9973)), range(toUInt64(number % 4)) FROM system.numbers LIMIT ${rows}`,
      );
    });
    say(`built in ${build.toFixed(1)}s`);
    await sql(`OPTIMIZE TABLE ${DATABASE}.${table} FINAL`).catch(() => undefined);
  }

  const target = parseConfig(stringify({ repository: { kind: 'local', path: '/nonexistent' }, encryption: 'none', targets: { 'bench-ch': { kind: 'clickhouse', url: HTTP_URL, user: 'lifeboat', password: { file: passwordFile }, databases: [DATABASE] } } }), configFile).targets.get('bench-ch')!;
  const store = new ClickhouseStore(configFile, target);
  const ctx: StoreContext = { signal, progress: () => undefined, log: { info: () => undefined, warn: (m) => say(m) } };
  const item = (await store.items(ctx)).find((i) => i.meta?.table === table);
  if (!item) throw new Error(`no item for ${DATABASE}.${table}`);
  const repo = await openRepository(config);
  const work = await mkdtemp(join(tmpdir(), 'lifeboat-bench-ch-'));
  const clientConfig = join(work, 'client.xml');
  const xml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
  await writeFile(clientConfig, `<config><user>lifeboat</user><password>${xml(password)}</password></config>\n`, { mode: 0o600 });

  const keys: string[] = [];
  const compression = config.compression ?? DEFAULT_COMPRESSION;
  let artifactBytes = 0;
  const lifeboatRun = async (): Promise<void> => {
    const key = artifactKey('bench-ch', makeBackupId(new Date(), Math.random().toString(16).slice(2)), `${item.file}.zst.age`);
    keys.push(key, sidecarKey(key));
    await store.backup(ctx, item, async (plaintext) => {
      artifactBytes = (await storeArtifact(repo, key, plaintext, config.encryption, signal, undefined, compression)).bytes;
    });
  };
  const storeOnlyRun = () =>
    store.backup(ctx, item, async (plaintext) => {
      for await (const chunk of plaintext) void chunk;
    });
  const out = join(work, `${table}.native`);
  const pipelineOnlyRun = async (): Promise<void> => {
    const key = artifactKey('bench-ch', makeBackupId(new Date(), Math.random().toString(16).slice(2)), `${item.file}.file.age`);
    keys.push(key, sidecarKey(key));
    await storeArtifact(repo, key, createReadStream(out, { highWaterMark: 1 << 16 }), config.encryption, signal, undefined, compression);
  };
  const bareRun = () => bareDump(clientConfig, `SELECT * FROM ${DATABASE}.${table} FORMAT Native`, out);

  try {
    say(`warm-up: one untimed run of each side`);
    await lifeboatRun();
    await bareRun();
    const bytes = (await stat(out)).size;
    const runs: ClickhouseBenchResult['runs'] = [];
    for (let i = 0; i < RUNS; i++) {
      // Interleaved, so that load from elsewhere on the machine falls on both sides alike.
      const run = { lifeboat: await timed(lifeboatRun), bare: await timed(bareRun), storeOnly: await timed(storeOnlyRun), pipelineOnly: await timed(pipelineOnlyRun) };
      runs.push(run);
      say(`run ${i + 1}/${RUNS}: lifeboat ${run.lifeboat.toFixed(2)}s, bare ${run.bare.toFixed(2)}s, store only ${run.storeOnly.toFixed(2)}s, pipeline only ${run.pipelineOnly.toFixed(2)}s`);
    }
    const lifeboatSeconds = median(runs.map((r) => r.lifeboat));
    const bareSeconds = median(runs.map((r) => r.bare));
    const storeOnlySeconds = median(runs.map((r) => r.storeOnly));
    const ratio = (a: number) => Math.round((a / bareSeconds) * 1000) / 1000;
    const pipelineOnlySeconds = median(runs.map((r) => r.pipelineOnly));
    // What the stock tool makes of the same bytes: `zstd -3`, the size the artifact is held against.
    const zstdBytes = Number((await runText('bash', ['-o', 'pipefail', '-c', `zstd -3 -q -c ${JSON.stringify(out)} | wc -c`])).trim());
    const zstdRatio = Math.round((artifactBytes / zstdBytes) * 1000) / 1000;
    say(`artifact ${artifactBytes} bytes, zstd -3 of the same Native bytes ${zstdBytes}: ${zstdRatio}`);
    return { rows, bytes, lifeboatSeconds, bareSeconds, ratio: ratio(lifeboatSeconds), storeOnlySeconds, storeOnlyRatio: ratio(storeOnlySeconds), pipelineOnlySeconds, artifactBytes, zstdBytes, zstdRatio, runs };
  } finally {
    await repo.delete(keys).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const rows = Number(process.argv[2] ?? MIN_ROWS);
  benchClickhouse({ rows }).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`bench clickhouse: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
