import { Command, Option } from 'commander';
import { loadConfig } from '../config';
import { LifeboatError, messageOf } from '../errors';
import * as cmd from './commands';
import * as keys from './keys';
import { output } from './output';

interface Globals {
  config?: string;
  json?: boolean;
}

const collect = (v: string, acc: string[]) => [...acc, v];

function action<A extends unknown[]>(fn: (config: ReturnType<typeof loadConfig>, out: ReturnType<typeof output>, ...args: A) => Promise<number>) {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const g = command.optsWithGlobals<Globals>();
    const out = output(g.json === true);
    try {
      process.exitCode = await fn(loadConfig(g.config), out, ...(args.slice(0, -1) as A));
    } catch (err) {
      out.error(messageOf(err), err instanceof LifeboatError ? { type: err.type } : {});
      process.exitCode = err instanceof LifeboatError && ['ConfigError', 'InvalidName'].includes(err.type) ? 2 : 1;
    }
  };
}

/** For commands that need no config file (the age verbs). */
function plain<A extends unknown[]>(fn: (...args: A) => Promise<number>) {
  return async (...args: unknown[]) => {
    try {
      process.exitCode = await fn(...(args.slice(0, -1) as A));
    } catch (err) {
      process.stderr.write(`lifeboat: ${messageOf(err)}\n`);
      process.exitCode = 1;
    }
  };
}

const program = new Command('lifeboat')
  .description('Backups, restores and restore drills of PostgreSQL, ClickHouse and S3 buckets, as Temporal workflows')
  .option('--config <file>', 'config file (default: $LIFEBOAT_CONFIG or ./lifeboat.yaml)')
  .option('--json', 'print one JSON document instead of text');

const withWorker = new Option('--with-worker', 'run a worker inside this process while the command runs');

program.command('worker').description('run a worker: executes lifeboat workflows and activities').action(action((c, o) => cmd.worker(c, o)));

program
  .command('backup [targets...]')
  .description('back up the named targets (default: all) and wait for the result')
  .addOption(withWorker)
  .action(action((c, o, targets: string[], opts: { withWorker?: boolean }) => cmd.backup(c, o, targets, opts)));

program
  .command('restore <backup-id>')
  .description('restore a backup: verify every artifact, then drop, recreate and restore')
  .option('--target <name>', 'restore only this target (repeatable)', collect, [])
  .option('--as <name>', 'restore the one item of --target under another name')
  .option('--yes', 'proceed without waiting for the approve signal')
  .addOption(withWorker)
  .action(action((c, o, id: string, opts: { target: string[]; as?: string; yes?: boolean; withWorker?: boolean }) => cmd.restore(c, o, id, opts)));

program
  .command('drill')
  .description('seed markers, back up, drop, restore and prove every marker came back')
  .option('--target <name>', 'drill only this target (repeatable)', collect, [])
  .addOption(new Option('--mode <mode>', 'scratch: restore under a temporary name; in-place: drop and restore the real one').choices(['scratch', 'in-place']).default('scratch'))
  .addOption(withWorker)
  .action(action((c, o, opts: { target: string[]; mode: string; withWorker?: boolean }) => cmd.drill(c, o, opts)));

program
  .command('verify <backup-id>')
  .description('prove a backup restorable without touching any database: checksums, age authentication, restore tool can read it')
  .option('--target <name>', 'verify only this target (repeatable)', collect, [])
  .addOption(withWorker)
  .action(action((c, o, id: string, opts: { target: string[]; withWorker?: boolean }) => cmd.verify(c, o, id, opts)));

program
  .command('prune [targets...]')
  .description('delete backups that the retention policy (config: retention) no longer keeps')
  .option('--dry-run', 'say what would be deleted; delete nothing')
  .addOption(withWorker)
  .action(action((c, o, targets: string[], opts: { dryRun?: boolean; withWorker?: boolean }) => cmd.prune(c, o, targets, opts)));

program
  .command('ls [targets...]')
  .description('list complete backups (those with a manifest)')
  .action(action((c, o, targets: string[]) => cmd.ls(c, o, targets)));

program
  .command('keygen')
  .description('make an age identity (like age-keygen); prints its public recipient')
  .option('-o, --output <file>', 'write the identity to FILE (mode 600, never overwritten)')
  .action(plain((o: { output?: string }) => keys.keygen(o)));

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
  process.stderr.write(`lifeboat: ${messageOf(err)}\n`);
  process.exitCode = 2;
});
