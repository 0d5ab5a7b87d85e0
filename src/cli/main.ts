import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../config/load';
import { LifeboatError, messageOf } from '../errors';
import { setLogOptions } from '../worker/logging';
import { check } from './check';
import * as cmd from './commands';
import * as configCmd from './config';
import { EXIT, exitFor } from './exit';
import * as keys from './keys';
import * as pitr from './pitr';
import { output } from './output';
import { report } from './report';
import { restore } from './restore';
import * as schedule from './schedule';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION: string = require('../../package.json').version;

// `lifeboat ls | head`: a closed pipe ends the command quietly, never with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    throw err;
  });
}

interface Globals {
  config?: string;
  json?: boolean;
  logFormat?: string;
  logLevel?: string;
}

const collect = (v: string, acc: string[]) => [...acc, v];

/** A whole number of seconds, 1 or more: `--approval-timeout abc` or `-5` is a usage error, not the default. */
function positiveSeconds(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`'${v}' is not a whole number of seconds, 1 or more`);
  return n;
}

function action<A extends unknown[]>(fn: (config: ReturnType<typeof loadConfig>, out: ReturnType<typeof output>, ...args: A) => Promise<number>) {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const g = command.optsWithGlobals<Globals>();
    const out = output(g.json === true);
    try {
      setLogOptions({ format: g.logFormat, level: g.logLevel }, command.name() === 'worker' ? 'INFO' : 'WARN');
      process.exitCode = await fn(loadConfig(g.config), out, ...(args.slice(0, -1) as A));
    } catch (err) {
      out.error(messageOf(err), err instanceof LifeboatError ? { type: err.type } : {});
      process.exitCode = exitFor(err);
    }
  };
}

/** For commands that need no config file (the age and signing-key verbs, config schema). */
function plain<A extends unknown[]>(fn: (...args: A) => Promise<number>) {
  return async (...args: unknown[]) => {
    try {
      process.exitCode = await fn(...(args.slice(0, -1) as A));
    } catch (err) {
      process.stderr.write(`lifeboat: ${messageOf(err)}\n`);
      process.exitCode = exitFor(err);
    }
  };
}

const program = new Command('lifeboat')
  .description('Backups, restores and restore drills of PostgreSQL, ClickHouse, S3 buckets, Redis, InfluxDB and Vault, as Temporal workflows')
  .version(VERSION, '-V, --version', 'print the version')
  .option('--config <file>', 'config file (default: $LIFEBOAT_CONFIG or ./lifeboat.yaml)')
  .option('--json', 'print one JSON document instead of text')
  .option('--log-format <format>', 'worker logs: text or json, one line per event (default: $LIFEBOAT_LOG_FORMAT or text)')
  .option('--log-level <level>', 'worker logs: trace, debug, info, warn or error (default: $LIFEBOAT_LOG_LEVEL, else info for `worker`, warn for the rest)')
  .showSuggestionAfterError()
  .exitOverride();

const withWorker = new Option('--with-worker', 'run a worker inside this process while the command runs');
const allowUnsigned = new Option('--allow-unsigned', 'accept backups whose manifest has no signature (made before signing was configured)');

program
  .command('worker')
  .description('run a worker: executes lifeboat workflows and activities; serves metrics when the config has metrics:')
  .option('--targets <name...>', "serve only these targets' own task queues (a worker beside their store)")
  .option('--task-queue <queue>', 'serve this task queue')
  .action(action((c, o, opts: { targets?: string[]; taskQueue?: string }) => cmd.worker(c, o, opts)));

program
  .command('backup [targets...]')
  .description('back up the named targets (default: all) and wait for the result')
  .option('--pitr <type>', 'a pgBackRest backup (full, diff or incr) of the named targets with a pitr: section (default: all of those)')
  .addOption(withWorker)
  .action(action((c, o, targets: string[], opts: { pitr?: string; withWorker?: boolean }) => (opts.pitr ? pitr.backup(c, o, targets, opts.pitr, opts) : cmd.backup(c, o, targets, opts))));

program
  .command('restore <backup-id>')
  .description('restore a backup: stop writers, verify every artifact, drop, recreate and restore, start writers, check; with --to-time/--to-latest, <backup-id> is a pitr target')
  .option('--target <name>', 'restore only this target (repeatable)', collect, [])
  .option('--only <name>', 'restore only this item of the --target, e.g. one database (repeatable)', collect, [])
  .option('--as <name>', 'restore the one --only item under another name (a copy: writers and hooks are not touched)')
  .option('--prefix <folder>', "bucket targets: restore only this folder, e.g. one tenant ('tenant-a' means 'tenant-a/')")
  .option('--owner <role>', 'postgres: the role that owns the restored databases and every object in them')
  .option('--yes', 'proceed without waiting for the approve signal')
  .option('--dry-run', 'print the plan (what would be stopped, dropped, restored, how many bytes); change nothing')
  .option('--approval-timeout <seconds>', 'how long to wait for approval before giving up (default 3600)', positiveSeconds)
  .option('--to-time <time>', 'point-in-time restore of the pitr target <backup-id> to this time (ISO 8601 with a zone: 2026-12-01T10:15:00Z)')
  .option('--to-latest', 'point-in-time restore of the pitr target <backup-id> to the end of its archived WAL')
  .addOption(allowUnsigned)
  .addOption(withWorker)
  .action(
    action((c, o, id: string, opts: Parameters<typeof restore>[3] & { toTime?: string; toLatest?: boolean }) =>
      opts.toTime || opts.toLatest ? pitr.restore(c, o, id, opts) : restore(c, o, id, opts),
    ),
  );

program
  .command('approve <workflow-id>')
  .description('approve a restore that waits for it (recorded with your user name)')
  .action(action((c, o, id: string) => cmd.approve(c, o, id)));

program
  .command('cancel <workflow-id>')
  .description('cancel a run; a restore still starts the writers again, a drill drops its scratch copy')
  .action(action((c, o, id: string) => cmd.cancel(c, o, id)));

program
  .command('drill')
  .description('seed markers, back up, restore and prove every marker came back')
  .option('--target <name>', 'drill only this target (repeatable)', collect, [])
  .addOption(new Option('--mode <mode>', 'scratch: restore a copy under a temporary name; in-place: stop writers, drop and restore the real one').choices(['scratch', 'in-place']).default('scratch'))
  .option('--pitr', 'the PITR drill of the pitr targets instead: restore to a time between two marker batches into a scratch copy')
  .addOption(withWorker)
  .action(action((c, o, opts: { target: string[]; mode: string; pitr?: boolean; withWorker?: boolean }) => (opts.pitr ? pitr.drill(c, o, opts.target, opts) : cmd.drill(c, o, opts))));

program
  .command('verify <backup-id>')
  .description('prove a backup restorable without touching any database: signature, checksums, age authentication, restore tool can read it')
  .option('--target <name>', 'verify only this target (repeatable)', collect, [])
  .addOption(allowUnsigned)
  .addOption(withWorker)
  .action(action((c, o, id: string, opts: { target: string[]; withWorker?: boolean; allowUnsigned?: boolean }) => cmd.verify(c, o, id, opts)));

program
  .command('prune [targets...]')
  .description('delete backups that the retention policy (config: retention) no longer keeps')
  .option('--dry-run', 'say what would be deleted; delete nothing')
  .addOption(new Option('--allow-unsigned', 'count backups without a signature in the retention policy'))
  .addOption(withWorker)
  .action(action((c, o, targets: string[], opts: { dryRun?: boolean; withWorker?: boolean; allowUnsigned?: boolean }) => cmd.prune(c, o, targets, opts)));

program
  .command('ls [targets...]')
  .description('list complete backups (those with a manifest), with their signature and verification; damaged ones too')
  .action(action((c, o, targets: string[]) => cmd.ls(c, o, targets)));

program
  .command('report')
  .description('RPO/RTO per target: age of the newest backup, restore and backup seconds measured by drills')
  .option('--last <n>', 'consider the newest N drill records (default 10)')
  .option('--max-rpo <duration>', "exit 5 when any target's newest backup is older than this (90m, 26h, 7d), naming them")
  .option('--html <file>', 'also write a self-contained HTML page: the table and plots of backup, restore seconds and RPO')
  .action(action((c, o, opts: { last?: string; maxRpo?: string; html?: string }) => report(c, o, opts)));

program
  .command('check')
  .description('check the whole repository: every manifest reads, every artifact is there with its recorded size and sidecar; exit 1 on any problem')
  .option('--read-data', 'also read every stored byte and compare its SHA-256 with the recorded one')
  .action(action((c, o, opts: { readData?: boolean }) => check(c, o, opts)));

program
  .command('pitr')
  .description('point-in-time recovery with pgBackRest (docs/pitr.md)')
  .command('setup <target>')
  .description("on the database's host: write the target's pgbackrest.conf, create its stanza and check that WAL archiving works")
  .option('--no-check', 'skip pgbackrest check (which switches a WAL segment and waits until it is archived)')
  .action(action((c, o, target: string, opts: { check: boolean }) => pitr.setup(c, o, target, opts)));

const schedules = program.command('schedule').description('Temporal Schedules from config (schedules:): nightly backups, drill, prune');
schedules
  .command('apply')
  .description('create or update the configured schedules; delete lifeboat schedules config no longer wants')
  .action(action((c, o) => schedule.apply(c, o)));
schedules
  .command('ls')
  .description('list the schedules: cron, next runs, paused, last run result')
  .action(action((c, o) => schedule.ls(c, o)));
schedules
  .command('pause [id]')
  .description('pause a schedule (id like lifeboat-backup-app-pg, or backup-app-pg), or --all')
  .option('--all', 'every lifeboat schedule')
  .option('--note <text>', 'why (shown in ls and the Web UI)')
  .action(action((c, o, id: string | undefined, opts: { all?: boolean; note?: string }) => schedule.pause(c, o, id, opts)));
schedules
  .command('unpause [id]')
  .description('resume a paused schedule, or --all')
  .option('--all', 'every lifeboat schedule')
  .option('--note <text>', 'a note to leave')
  .action(action((c, o, id: string | undefined, opts: { all?: boolean; note?: string }) => schedule.unpause(c, o, id, opts)));
schedules
  .command('trigger <id>')
  .description('run a schedule now (skipped while its previous run is still going)')
  .action(action((c, o, id: string) => schedule.trigger(c, o, id)));

const config = program.command('config').description('the config file: check it, or print its JSON Schema');
config
  .command('check')
  .description('load and validate the config, check every secret file, and print what it resolved to')
  .action(action((c, o) => configCmd.check(c, o)));
config
  .command('reference')
  .description('print the settings reference (docs/config-reference.md) from the schema')
  .action(plain(() => configCmd.reference()));
config
  .command('schema')
  .description('print the JSON Schema of lifeboat.yaml (for editors: yaml-language-server)')
  .action(plain(() => configCmd.schema()));

program
  .command('keygen')
  .description('make an age identity (like age-keygen), or with --signing an Ed25519 manifest-signing key; prints the public part')
  .option('-o, --output <file>', 'write the key to FILE (mode 600, never overwritten)')
  .option('--signing', 'a manifest-signing key (signing.keyFile) instead of an age identity')
  .action(plain((o: { output?: string; signing?: boolean }) => (o.signing ? keys.signingKeygen(o) : keys.keygen(o))));

program
  .command('seal')
  .description('encrypt stdin to stdout in the age format (like age -r)')
  .option('-r, --recipient <age1…>', 'recipient (repeatable)', collect, [])
  .option('-R, --recipients-file <file>', 'file of recipients, one per line (repeatable)', collect, [])
  .action(plain((o: { recipient: string[]; recipientsFile: string[] }) => keys.seal(o)));

program
  .command('open')
  .description('decrypt an age file from stdin to stdout (like age -d -i)')
  .option('-i, --identity <file>', 'identity file (repeatable)', collect, [])
  .action(plain((o: { identity: string[] }) => keys.open(o)));

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // Help and --version end with code 0; a usage error (unknown option, bad value) with 2.
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    return;
  }
  process.stderr.write(`lifeboat: ${messageOf(err)}\n`);
  process.exitCode = exitFor(err) === EXIT.failed ? EXIT.usage : exitFor(err);
});
