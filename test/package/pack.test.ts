import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * The package as the ecosystem installs it: `npm pack` (whose prepack builds)
 * gives a tarball with the built code and no tests; installed into an empty
 * folder, `npx lifeboat` runs it. Dependencies come from the npm registry
 * (or npm's cache). It packs a copy of the working tree (the files git knows,
 * node_modules linked): prepack empties and rebuilds dist/, which the other
 * test files' CLI runs and workers are loading meanwhile.
 */
jest.setTimeout(600_000);

const root = join(__dirname, '../..');
const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
// npm's own chatter (funding, updates) is not part of what is tested.
const quiet = { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' };
let dir: string;
let tarball: string;
let files: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-pack-'));
  const tree = join(dir, 'tree');
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, maxBuffer: 64 << 20 });
  for (const f of listed.stdout.split('\0').filter(Boolean)) await cp(join(root, f), join(tree, f), { recursive: true, force: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err; // deleted in the working tree, not yet in git
  });
  await symlink(join(root, 'node_modules'), join(tree, 'node_modules'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: tree, env: quiet, maxBuffer: 64 << 20 });
  // prepack's build output comes before npm's JSON.
  const report = JSON.parse(stdout.slice(stdout.indexOf('[\n'))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(dir, report[0]!.filename);
  files = report[0]!.files.map((f) => f.path);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the tarball has the built CLI and workflows, and nothing of tests, benchmarks, sources or the stack', () => {
  expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'bin/lifeboat', 'dist/cli/main.js', 'dist/worker/index.js', 'dist/workflows/index.js']));
  const stray = files.filter((f) => /^(test|bench|src|scripts|\.stack|\.ci|node_modules)\/|\.test\.|^\.stack-lifeboat\.yaml$|^tsconfig/.test(f));
  expect(stray).toEqual([]);
});

test('installed from the tarball into an empty folder, npx lifeboat --version, --help and keygen run the built code', async () => {
  const app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), '{ "name": "lifeboat-pack-test", "private": true }\n');
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, env: quiet, maxBuffer: 64 << 20 });
  expect(JSON.parse(await readFile(join(app, 'node_modules', pkg.name, 'package.json'), 'utf8')).version).toBe(pkg.version);

  const version = await run('npx', ['--no-install', 'lifeboat', '--version'], { cwd: app, env: quiet });
  expect(version.stdout.trim()).toBe(pkg.version);

  const help = await run('npx', ['--no-install', 'lifeboat', '--help'], { cwd: app, env: quiet });
  expect(help.stdout).toMatch(/^Usage: lifeboat /m);
  expect(help.stdout).toMatch(/^\s+worker\s/m);
  expect(help.stdout).toMatch(/^\s+check \[options\]/m);

  // A verb that needs no config or server: real code paths of the built package.
  const key = await run('npx', ['--no-install', 'lifeboat', 'keygen'], { cwd: app, env: quiet });
  expect(key.stdout).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]+$/m);
});
