/**
 * `npm run bench`: how much lifeboat's orchestration costs over the bare tools,
 * how fast its age stage is, and whether the worker's memory stays flat as the
 * database grows. scripts/bench.sh compiles this and runs it against the local
 * stack; see docs/benchmarks.md for the method and today's numbers.
 *
 *   npm run bench [-- --json] [--scale-small 7] [--scale-large 70] [--skip-large] [--runs 5] …
 */
import { existsSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { measureAgeThroughput } from './age-throughput';
import { MB, MiB, round, say } from './lib';
import { median, PostgresBench, type SizeResult } from './postgres';

const USAGE = `usage: npm run bench -- [options]
  --json                 print one JSON object on stdout (progress stays on stderr)
  --scale-small N        pgbench scale of the small database (default 7, ~100 MB)
  --scale-large N        pgbench scale of the large database (default 70, ~1 GB)
  --skip-large           only the small database (quick run; ratios then come from it)
  --runs N               timed runs of each side after the warm-ups (default 5; ratios of medians)
  --age-mib N            plaintext for the age measurement (default 1024)
  --part-size-mb N       override the repository's multipart part size for the worker
  --queue-size N         override the repository's multipart queue depth for the worker
  --clickhouse-rows N    rows for the ClickHouse figures, if bench/clickhouse exists (default 1000000)
  --bucket-objects N     objects for the bucket figures, if bench/bucket exists (default 10000)
  --skip-clickhouse, --skip-bucket
  --pitr-scale N         pgbench scale of the PITR figures (pgBackRest backup and restore to a time; default: --scale-large)
  --skip-pitr            no PITR figures
  --pitr-only            only the PITR figures (no age, pg_dump, ClickHouse or bucket figures)
  --wait-quiet MIN       first wait up to MIN minutes for the 1-minute load average to drop below 1
  --strict               exit 1 when a target is missed`;

interface Options {
  json: boolean;
  scaleSmall: number;
  scaleLarge: number;
  skipLarge: boolean;
  runs: number;
  ageMiB: number;
  partSizeMB?: number;
  queueSize?: number;
  clickhouseRows: number;
  bucketObjects: number;
  skipClickhouse: boolean;
  skipBucket: boolean;
  pitrScale?: number;
  skipPitr: boolean;
  pitrOnly: boolean;
  strict: boolean;
  waitQuiet: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { json: false, scaleSmall: 7, scaleLarge: 70, skipLarge: false, runs: 5, ageMiB: 1024, clickhouseRows: 1_000_000, bucketObjects: 10_000, skipClickhouse: false, skipBucket: false, skipPitr: false, pitrOnly: false, strict: false, waitQuiet: 0 };
  const flags: Record<string, keyof Options> = { '--json': 'json', '--skip-large': 'skipLarge', '--skip-clickhouse': 'skipClickhouse', '--skip-bucket': 'skipBucket', '--skip-pitr': 'skipPitr', '--pitr-only': 'pitrOnly', '--strict': 'strict' };
  const numbers: Record<string, keyof Options> = {
    '--scale-small': 'scaleSmall',
    '--scale-large': 'scaleLarge',
    '--runs': 'runs',
    '--age-mib': 'ageMiB',
    '--part-size-mb': 'partSizeMB',
    '--queue-size': 'queueSize',
    '--clickhouse-rows': 'clickhouseRows',
    '--bucket-objects': 'bucketObjects',
    '--wait-quiet': 'waitQuiet',
    '--pitr-scale': 'pitrScale',
  };
  for (let i = 0; i < argv.length; i++) {
    const [a, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    if (a === '--help' || a === '-h') {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (flags[a]) {
      (o as unknown as Record<string, unknown>)[flags[a]] = true;
    } else if (numbers[a]) {
      const v = Number(inline ?? argv[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${a} needs a positive whole number\n${USAGE}`);
      (o as unknown as Record<string, unknown>)[numbers[a]] = v;
    } else {
      throw new Error(`unknown option ${argv[i]}\n${USAGE}`);
    }
  }
  return o;
}

const TARGETS = { backupRatio: 1.1, restoreRatio: 1.1, ageMBps: 500, peakRssGrowth: 0.1 };

/** Figures of one size (medians of the timed runs): MB/s of database bytes (pg_database_size) and of stored bytes. */
function rates(r: SizeResult) {
  const b = median(r.backup.orchestratedSeconds);
  const bb = median(r.backup.bareSeconds);
  const rs = median(r.restore.orchestratedSeconds);
  const rb = median(r.restore.bareSeconds);
  return {
    backupSeconds: round(b, 2),
    bareBackupSeconds: round(bb, 2),
    restoreSeconds: round(rs, 2),
    bareRestoreSeconds: round(rb, 2),
    backupMBps: round(r.dbBytes / MB / b, 1),
    bareBackupMBps: round(r.dbBytes / MB / bb, 1),
    restoreMBps: round(r.dbBytes / MB / rs, 1),
    bareRestoreMBps: round(r.dbBytes / MB / rb, 1),
    artifactBytes: r.backup.artifactBytes,
    bareDumpBytes: r.backup.bareDumpBytes,
    artifactMBps: round(r.backup.artifactBytes / MB / b, 1),
  };
}

/** Waits (at most `minutes`) until the 1-minute load average is below 1: timings on a busy machine mean little. */
async function waitQuiet(minutes: number): Promise<void> {
  const until = Date.now() + minutes * 60_000;
  let told = false;
  while (loadavg()[0]! >= 1 && Date.now() < until) {
    if (!told) say(`waiting for the machine to be quiet (load ${loadavg()[0]!.toFixed(2)}; up to ${minutes} min)`);
    told = true;
    await new Promise((r) => setTimeout(r, 5000));
  }
}

/**
 * Another part's figures (bench/clickhouse.ts, bench/bucket.ts), if that part
 * is there: loaded at run time so the benchmark builds and runs without it.
 */
async function optionalPart(file: string, fn: string, arg: unknown): Promise<unknown> {
  const path = join(__dirname, file);
  if (!existsSync(path)) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path) as Record<string, unknown>;
    if (typeof mod[fn] !== 'function') return { error: `${file} does not export ${fn}` };
    say(`${fn}(${JSON.stringify(arg)})`);
    return await (mod[fn] as (a: unknown) => Promise<unknown>)(arg);
  } catch (err) {
    say(`${fn} failed: ${(err as Error).message}`);
    return { error: (err as Error).message };
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  // With --json, stdout carries the one object: anything else written there (another part's
  // console.log, a library's notice) goes to stderr instead.
  const stdoutWrite = process.stdout.write.bind(process.stdout);
  if (o.json) process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;
  const stateDir = process.env.LIFEBOAT_STATE_DIR;
  const configFile = process.env.LIFEBOAT_CONFIG;
  if (!stateDir || !configFile) throw new Error('LIFEBOAT_STATE_DIR and LIFEBOAT_CONFIG are not set: run `npm run bench` (scripts/bench.sh), which starts the stack and sets them');
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memGiB: round(totalmem() / 1024 ** 3, 1), node: process.version };
  say(`machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memGiB} GiB, node ${machine.node}`);
  await waitQuiet(o.waitQuiet);
  const loadAtStart = round(loadavg()[0]!, 2);
  if (loadAtStart > 1) say(`warning: the 1-minute load average is ${loadAtStart} on ${machine.cpus} cores: something else is running, and the timings will show it`);

  if (o.pitrOnly) {
    const pitr = await optionalPart('pitr.js', 'benchPitr', { scale: o.pitrScale ?? o.scaleLarge });
    if (o.json) stdoutWrite(`${JSON.stringify({ pitr, machine, loadAverage: { start: loadAtStart, end: round(loadavg()[0]!, 2) } })}\n`);
    else process.stdout.write(`pitr: ${JSON.stringify(pitr)}\n`);
    return;
  }

  // The age stage alone first, while nothing else of ours runs.
  say(`age: sealing and opening ${o.ageMiB} MiB in memory`);
  const age = await measureAgeThroughput(o.ageMiB * MiB);
  const ageMBps = round(Math.min(age.sealMBps, age.openMBps), 0);
  say(`age: seal ${age.sealMBps.toFixed(0)} MB/s, open ${age.openMBps.toFixed(0)} MB/s`);

  const pg = new PostgresBench({
    stackConfigFile: configFile,
    workDir: join(stateDir, 'bench'),
    passfile: process.env.PGPASSFILE ?? join(stateDir, 'secrets', 'pgpass'),
    runs: o.runs,
    partSizeMB: o.partSizeMB,
    queueSize: o.queueSize,
  });
  let small: SizeResult;
  let large: SizeResult | null = null;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`${sig}: stopping the worker, dropping the restored copies, deleting the run's objects`);
      const exit = () => process.exit(sig === 'SIGINT' ? 130 : 143);
      setTimeout(exit, 30_000).unref();
      pg.abort().then(exit, exit);
    });
  }
  try {
    small = await pg.measure(o.scaleSmall);
    if (!o.skipLarge) large = await pg.measure(o.scaleLarge);
  } finally {
    await pg.close();
  }

  const clickhouse = o.skipClickhouse ? undefined : await optionalPart('clickhouse.js', 'benchClickhouse', { rows: o.clickhouseRows });
  const bucket = o.skipBucket ? undefined : await optionalPart('bucket.js', 'benchBucket', { objects: o.bucketObjects });
  const pitr = o.skipPitr ? undefined : await optionalPart('pitr.js', 'benchPitr', { scale: o.pitrScale ?? o.scaleLarge });

  const loadAtEnd = round(loadavg()[0]!, 2);
  const main = large ?? small;
  const peakRssSmallMB = small.worker.peakRssMB;
  const peakRssLargeMB = large?.worker.peakRssMB ?? null;
  const peakRssGrowth = peakRssLargeMB === null ? null : round(peakRssLargeMB / peakRssSmallMB - 1, 3);
  const pass = {
    backupRatio: main.backup.ratio <= TARGETS.backupRatio,
    restoreRatio: main.restore.ratio <= TARGETS.restoreRatio,
    ageMBps: ageMBps >= TARGETS.ageMBps,
    peakRss: peakRssGrowth === null ? null : Math.abs(peakRssGrowth) <= TARGETS.peakRssGrowth,
  };
  const allPass = Object.values(pass).every((v) => v !== false);
  const r = rates(main);
  const result = {
    backupRatio: main.backup.ratio,
    restoreRatio: main.restore.ratio,
    ratiosFrom: large ? 'large' : 'small',
    ageMBps,
    ageSealMBps: round(age.sealMBps, 0),
    ageOpenMBps: round(age.openMBps, 0),
    ageBytes: o.ageMiB * MiB,
    peakRssSmallMB,
    peakRssLargeMB,
    peakRssGrowth,
    dbBytesSmall: small.dbBytes,
    dbBytesLarge: large?.dbBytes ?? null,
    ...r,
    backupActivitySeconds: main.backup.orchestratedActivitySeconds,
    restoreActivitySeconds: main.restore.orchestratedActivitySeconds,
    artifactBytesSmall: small.backup.artifactBytes,
    artifactBytesLarge: large?.backup.artifactBytes ?? null,
    targets: TARGETS,
    pass,
    allPass,
    runs: o.runs,
    machine,
    loadAverage: { start: loadAtStart, end: loadAtEnd },
    postgres: { small: { ...small, rates: rates(small) }, large: large ? { ...large, rates: rates(large) } : null },
    ...(clickhouse !== undefined ? { clickhouse } : {}),
    ...(bucket !== undefined ? { bucket } : {}),
    ...(pitr !== undefined ? { pitr } : {}),
  };

  if (o.json) {
    stdoutWrite(`${JSON.stringify(result)}\n`);
  } else {
    printTable(result, main, large !== null, { clickhouse, bucket, pitr });
  }
  if (o.strict && !allPass) process.exitCode = 1;
}

const breakdown = (b: Record<string, number>) =>
  Object.entries(b)
    .map(([k, v]) => `${k} ${v.toFixed(2)}s`)
    .join(', ');

function printTable(
  res: { backupRatio: number; restoreRatio: number; ageMBps: number; ageSealMBps: number; ageOpenMBps: number; peakRssSmallMB: number; peakRssLargeMB: number | null; peakRssGrowth: number | null; dbBytesSmall: number; dbBytesLarge: number | null; pass: Record<string, boolean | null>; postgres: { small: SizeResult } },
  main: SizeResult,
  hasLarge: boolean,
  others: { clickhouse?: unknown; bucket?: unknown; pitr?: unknown },
): void {
  const verdict = (v: boolean | null) => (v === null ? 'skipped' : v ? 'pass' : 'FAIL');
  const r = rates(main);
  const size = `${main.database}, ${(main.dbBytes / MB).toFixed(0)} MB`;
  const rows: string[][] = [
    ['figure', 'value', 'target', 'result'],
    [`backup ratio (orchestrated / bare pg_dump -Fc; ${size})`, res.backupRatio.toFixed(3), `<= ${TARGETS.backupRatio.toFixed(2)}`, verdict(res.pass.backupRatio!)],
    [`restore ratio (verify + restore / bare pg_restore; ${size})`, res.restoreRatio.toFixed(3), `<= ${TARGETS.restoreRatio.toFixed(2)}`, verdict(res.pass.restoreRatio!)],
    ['age throughput (min of seal, open)', `${res.ageMBps} MB/s (seal ${res.ageSealMBps}, open ${res.ageOpenMBps})`, `>= ${TARGETS.ageMBps} MB/s`, verdict(res.pass.ageMBps!)],
    [`worker peak RSS, small db (${(res.dbBytesSmall / MB).toFixed(0)} MB)`, `${res.peakRssSmallMB} MB`, '', ''],
    [
      `worker peak RSS, large db (${res.dbBytesLarge === null ? 'skipped' : `${(res.dbBytesLarge / MB).toFixed(0)} MB`})`,
      res.peakRssLargeMB === null ? '-' : `${res.peakRssLargeMB} MB (${res.peakRssGrowth! >= 0 ? '+' : ''}${(res.peakRssGrowth! * 100).toFixed(1)}%)`,
      `within ${TARGETS.peakRssGrowth * 100}% of small`,
      verdict(res.pass.peakRss!),
    ],
    ['backup, orchestrated / bare', `${r.backupSeconds}s / ${r.bareBackupSeconds}s (${r.backupMBps} / ${r.bareBackupMBps} MB/s of database)`, '', ''],
    ['restore, orchestrated / bare', `${r.restoreSeconds}s / ${r.bareRestoreSeconds}s (${r.restoreMBps} / ${r.bareRestoreMBps} MB/s of database)`, '', ''],
    ['orchestrated backup, where the time goes (medians)', breakdown(main.backup.orchestratedActivitySeconds), '', ''],
    ['orchestrated restore, where the time goes (medians)', breakdown(main.restore.orchestratedActivitySeconds), '', ''],
    ['artifact (age) / bare dump file', `${(r.artifactBytes / MB).toFixed(1)} MB / ${(r.bareDumpBytes / MB).toFixed(1)} MB (stored at ${r.artifactMBps} MB/s)`, '', ''],
  ];
  if (!hasLarge) rows.push(['(--skip-large: ratios from the small database)', '', '', '']);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  process.stdout.write(`${[line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n')}\n`);
  // The other parts' figures, as they report them.
  for (const [name, v] of Object.entries(others)) if (v !== undefined) process.stdout.write(`\n${name}: ${JSON.stringify(v)}\n`);
}

main().then(
  // Keep-alive sockets (S3, Temporal) must not hold the process open.
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
