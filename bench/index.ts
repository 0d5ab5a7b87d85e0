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
  --skip-large           no large pgbench database
  --wide-mb N            size of the wide database (jsonb and text), MB (default 600)
  --skip-wide            no wide database (the issue's targets are then not judged)
  --levels L,L,…         zstd levels to compare on the wide database (default 1,3,9)
  --overhead-scale N     pgbench scale of the small database whose backup overhead is measured (default 1)
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
  wideMB: number;
  skipWide: boolean;
  levels: number[];
  overheadScale: number;
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
  const o: Options = { json: false, wideMB: 600, skipWide: false, levels: [1, 3, 9], overheadScale: 1, scaleSmall: 7, scaleLarge: 70, skipLarge: false, runs: 5, ageMiB: 1024, clickhouseRows: 1_000_000, bucketObjects: 10_000, skipClickhouse: false, skipBucket: false, skipPitr: false, pitrOnly: false, strict: false, waitQuiet: 0 };
  const flags: Record<string, keyof Options> = { '--json': 'json', '--skip-wide': 'skipWide', '--skip-large': 'skipLarge', '--skip-clickhouse': 'skipClickhouse', '--skip-bucket': 'skipBucket', '--skip-pitr': 'skipPitr', '--pitr-only': 'pitrOnly', '--strict': 'strict' };
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
    '--wide-mb': 'wideMB',
    '--overhead-scale': 'overheadScale',
  };
  for (let i = 0; i < argv.length; i++) {
    const [a, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    if (a === '--help' || a === '-h') {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (a === '--levels') {
      o.levels = (inline ?? argv[++i] ?? '').split(',').map(Number);
      if (!o.levels.length || o.levels.some((l) => !Number.isInteger(l) || l < 1 || l > 19)) throw new Error(`--levels needs zstd levels 1-19, comma-separated\n${USAGE}`);
    } else if (flags[a]) {
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

/**
 * The targets. On the wide database: the backup at most 0.7x bare `pg_dump -Fc`
 * with an artifact no larger than its file, the restore at most 1.0x the
 * hand-made pipeline; a small database's backup spends under 0.5 s outside
 * pg_dump; ClickHouse and bucket artifacts within 1.1x of `zstd -3` of the
 * same bytes; the worker's peak RSS under 200 MB and flat across sizes.
 */
const TARGETS = { backupRatioWide: 0.7, artifactVsDump: 1.0, restoreHandRatioWide: 1.0, smallOverheadSeconds: 0.5, zstdRatio: 1.1, ageMBps: 500, peakRssMB: 200, peakRssGrowth: 0.1 };

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
  let wide: SizeResult | null = null;
  let levels: Awaited<ReturnType<PostgresBench['levels']>> = [];
  let overhead: Awaited<ReturnType<PostgresBench['smallOverhead']>> | null = null;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`${sig}: stopping the worker, dropping the restored copies, deleting the run's objects`);
      const exit = () => process.exit(sig === 'SIGINT' ? 130 : 143);
      setTimeout(exit, 30_000).unref();
      pg.abort().then(exit, exit);
    });
  }
  try {
    overhead = await pg.smallOverhead(o.overheadScale);
    small = await pg.measure(o.scaleSmall);
    if (!o.skipLarge) large = await pg.measure(o.scaleLarge);
    if (!o.skipWide) {
      wide = await pg.measure(0, 'wide', o.wideMB);
      levels = await pg.levels(wide.database, o.levels);
    }
  } finally {
    await pg.close();
  }

  const clickhouse = o.skipClickhouse ? undefined : ((await optionalPart('clickhouse.js', 'benchClickhouse', { rows: o.clickhouseRows })) as { zstdRatio?: number } | undefined);
  const bucket = o.skipBucket ? undefined : ((await optionalPart('bucket.js', 'benchBucket', { objects: o.bucketObjects })) as { zstdRatio?: number } | undefined);
  const pitr = o.skipPitr ? undefined : await optionalPart('pitr.js', 'benchPitr', { scale: o.pitrScale ?? o.scaleLarge });

  const loadAtEnd = round(loadavg()[0]!, 2);
  const sizes = [small, large, wide].filter((x): x is SizeResult => x !== null);
  const peakRssMB = Math.max(...sizes.map((x) => x.worker.peakRssMB));
  const peakRssGrowth = large ? round(large.worker.peakRssMB / small.worker.peakRssMB - 1, 3) : null;
  const judge = (v: number | null | undefined, ok: (x: number) => boolean) => (v === null || v === undefined ? null : ok(v));
  const pass = {
    backupRatioWide: judge(wide?.backup.ratio, (x) => x <= TARGETS.backupRatioWide),
    artifactVsDump: judge(wide ? wide.backup.artifactBytes / wide.backup.bareDumpBytes : null, (x) => x <= TARGETS.artifactVsDump),
    restoreHandRatioWide: judge(wide?.restore.handRatio, (x) => x <= TARGETS.restoreHandRatioWide),
    smallOverhead: judge(overhead?.outsideDumpSeconds, (x) => x < TARGETS.smallOverheadSeconds),
    clickhouseZstd: judge(clickhouse?.zstdRatio, (x) => x <= TARGETS.zstdRatio),
    bucketZstd: judge(bucket?.zstdRatio, (x) => x <= TARGETS.zstdRatio),
    ageMBps: ageMBps >= TARGETS.ageMBps,
    peakRssMB: peakRssMB < TARGETS.peakRssMB,
    peakRssFlat: judge(peakRssGrowth, (x) => Math.abs(x) <= TARGETS.peakRssGrowth),
  };
  const allPass = Object.values(pass).every((v) => v !== false);
  const result = {
    targets: TARGETS,
    pass,
    allPass,
    wide: wide ? { ...wide, rates: rates(wide), artifactVsDump: round(wide.backup.artifactBytes / wide.backup.bareDumpBytes, 3) } : null,
    levels,
    smallOverhead: overhead,
    ageMBps,
    ageSealMBps: round(age.sealMBps, 0),
    ageOpenMBps: round(age.openMBps, 0),
    ageBytes: o.ageMiB * MiB,
    peakRssMB,
    peakRssGrowth,
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
    printTable(result, { clickhouse, bucket, pitr });
  }
  if (o.strict && !allPass) process.exitCode = 1;
}

const breakdown = (b: Record<string, number>) =>
  Object.entries(b)
    .map(([k, v]) => `${k} ${v.toFixed(2)}s`)
    .join(', ');

function printTable(
  res: {
    pass: Record<string, boolean | null>;
    wide: (SizeResult & { artifactVsDump: number }) | null;
    levels: Array<{ level: number; seconds: number; artifactBytes: number }>;
    smallOverhead: { database: string; bareSeconds: number; orchestratedSeconds: number; outsideDumpSeconds: number; activitySeconds: Record<string, number> } | null;
    ageMBps: number;
    ageSealMBps: number;
    ageOpenMBps: number;
    peakRssMB: number;
    peakRssGrowth: number | null;
    postgres: { small: SizeResult; large: SizeResult | null };
  },
  others: { clickhouse?: unknown; bucket?: unknown; pitr?: unknown },
): void {
  const verdict = (v: boolean | null | undefined) => (v === null || v === undefined ? 'skipped' : v ? 'pass' : 'FAIL');
  const w = res.wide;
  const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;
  const ch = others.clickhouse as { zstdRatio?: number; artifactBytes?: number; zstdBytes?: number } | undefined;
  const bk = others.bucket as { zstdRatio?: number; artifactBytes?: number; zstdBytes?: number } | undefined;
  const rows: string[][] = [['figure', 'value', 'target', 'result']];
  if (w) {
    const r = rates(w);
    const size = `${w.database}, ${mb(w.dbBytes)}`;
    rows.push(
      [`backup / bare pg_dump -Fc (${size})`, `${w.backup.ratio.toFixed(3)} (${r.backupSeconds}s / ${r.bareBackupSeconds}s)`, `<= ${TARGETS.backupRatioWide}`, verdict(res.pass.backupRatioWide)],
      ['backup / hand-made pipeline (pg_dump -Fc | age | rclone rcat)', w.backup.handRatio?.toFixed(3) ?? '-', '', ''],
      ['stored artifact / pg_dump -Fc file', `${w.artifactVsDump.toFixed(3)} (${mb(w.backup.artifactBytes)} / ${mb(w.backup.bareDumpBytes)})`, `<= ${TARGETS.artifactVsDump}`, verdict(res.pass.artifactVsDump)],
      ['restore / hand-made pipeline (rclone cat | age -d | pg_restore)', `${w.restore.handRatio?.toFixed(3) ?? '-'} (${r.restoreSeconds}s)`, `<= ${TARGETS.restoreHandRatioWide}`, verdict(res.pass.restoreHandRatioWide)],
      ['restore / bare pg_restore of a local file', w.restore.ratio.toFixed(3), '', ''],
      ['wide backup, where the time goes (medians)', breakdown(w.backup.orchestratedActivitySeconds), '', ''],
      ['wide restore, where the time goes (medians)', breakdown(w.restore.orchestratedActivitySeconds), '', ''],
      ...res.levels.map((l) => [`zstd level ${l.level} (wide backup)`, `${l.seconds}s, ${mb(l.artifactBytes)} stored`, '', '']),
    );
  }
  const so = res.smallOverhead;
  if (so) rows.push([`small backup outside pg_dump (${so.database})`, `${so.outsideDumpSeconds.toFixed(3)}s (${so.orchestratedSeconds}s - ${so.bareSeconds}s; ${breakdown(so.activitySeconds)})`, `< ${TARGETS.smallOverheadSeconds}s`, verdict(res.pass.smallOverhead)]);
  rows.push(
    ['ClickHouse artifact / zstd -3 of the same Native bytes', ch?.zstdRatio !== undefined ? `${ch.zstdRatio.toFixed(3)} (${mb(ch.artifactBytes ?? 0)} / ${mb(ch.zstdBytes ?? 0)})` : '-', `<= ${TARGETS.zstdRatio}`, verdict(res.pass.clickhouseZstd)],
    ['bucket pool / zstd -3 of the same objects', bk?.zstdRatio !== undefined ? `${bk.zstdRatio.toFixed(3)} (${mb(bk.artifactBytes ?? 0)} / ${mb(bk.zstdBytes ?? 0)})` : '-', `<= ${TARGETS.zstdRatio}`, verdict(res.pass.bucketZstd)],
    ['age throughput (min of seal, open)', `${res.ageMBps} MB/s (seal ${res.ageSealMBps}, open ${res.ageOpenMBps})`, `>= ${TARGETS.ageMBps} MB/s`, verdict(res.pass.ageMBps)],
    ['worker peak RSS (largest of all sizes)', `${res.peakRssMB} MB`, `< ${TARGETS.peakRssMB} MB`, verdict(res.pass.peakRssMB)],
    ['worker peak RSS, large / small pgbench', res.peakRssGrowth === null ? '-' : `${res.peakRssGrowth >= 0 ? '+' : ''}${(res.peakRssGrowth * 100).toFixed(1)}%`, `within ${TARGETS.peakRssGrowth * 100}%`, verdict(res.pass.peakRssFlat)],
  );
  for (const [label, x] of [['small', res.postgres.small], ['large', res.postgres.large]] as const) {
    if (!x) continue;
    const r = rates(x);
    rows.push([`pgbench ${label} (${x.database}, ${mb(x.dbBytes)}): backup / bare, restore / bare`, `${x.backup.ratio.toFixed(3)} (${r.backupSeconds}s), ${x.restore.ratio.toFixed(3)} (${r.restoreSeconds}s); artifact ${mb(x.backup.artifactBytes)} vs dump ${mb(x.backup.bareDumpBytes)}`, '', '']);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  process.stdout.write(`${[line(rows[0]!), widths.map((x) => '-'.repeat(x)).join('  '), ...rows.slice(1).map(line)].join('\n')}\n`);
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
