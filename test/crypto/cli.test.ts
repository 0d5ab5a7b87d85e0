import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `lifeboat keygen|seal|open` against the stock age tool, both ways (needs `npm run build`). */
const bin = join(__dirname, '../../bin/lifeboat');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-keys-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('keygen writes a private identity file that age reads, and never overwrites it', async () => {
  const file = join(dir, 'id.txt');
  const r = spawnSync(process.execPath, [bin, 'keygen', '-o', file], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  const recipient = /^Public key: (age1[0-9a-z]+)$/m.exec(r.stderr)?.[1];
  expect(execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim()).toBe(recipient);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  const again = spawnSync(process.execPath, [bin, 'keygen', '-o', file], { encoding: 'utf8' });
  expect(again.status).toBe(2); // bad arguments (docs/cli.md exit statuses)
  expect(again.stderr).toContain('already exists; not overwriting an identity file');

  const plain = Buffer.from('backup bytes '.repeat(10000));
  const sealed = execFileSync(process.execPath, [bin, 'seal', '-r', recipient!], { input: plain });
  expect(execFileSync('age', ['-d', '-i', file], { input: sealed }).equals(plain)).toBe(true);
  const byAge = execFileSync('age', ['-r', recipient!], { input: plain });
  expect(execFileSync(process.execPath, [bin, 'open', '-i', file], { input: byAge }).equals(plain)).toBe(true);
  expect((await readFile(file, 'utf8')).startsWith('# created: ')).toBe(true);
});

test('open refuses what is not an age file, and a key on the command line is not accepted', () => {
  const r = spawnSync(process.execPath, [bin, 'open', '-i', join(dir, 'id.txt')], { input: 'plain text', encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain("input is not an age file (it does not start with 'age-encryption.org/v1'); was it encrypted?");
  const noId = spawnSync(process.execPath, [bin, 'open'], { input: 'x', encoding: 'utf8' });
  expect(noId.stderr).toContain('a key is never accepted on the command line');
});
