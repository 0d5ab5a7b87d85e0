import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hook } from '../../src/config/hooks';
import { processAlive } from '../../src/stores/child';
import { runHook } from '../../src/stores/hooks';

/** A writer hook is a real process: a cancel stops it and what it started, and a cancel that came first never starts it. */
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-hooks-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A hook that notes its pid and its child's, then waits. */
const waiting = (file: string): Hook => ({ command: ['/bin/sh', '-c', `sleep 60 & echo $$ $! > '${file}'; wait`], timeoutSeconds: 120, retries: 0 });

test('a hook whose run was cancelled before it started is not started at all', async () => {
  const file = join(dir, 'never');
  const ac = new AbortController();
  ac.abort();
  await expect(runHook(waiting(file), {}, ac.signal)).rejects.toMatchObject({ type: 'Cancelled', message: expect.stringMatching(/^hook '\/bin\/sh -c sleep 60 .*' was not started: the run was cancelled$/) });
  await new Promise((r) => setTimeout(r, 200));
  expect(existsSync(file)).toBe(false);
});

test('a hook cancelled while it runs is stopped with everything it started', async () => {
  const file = join(dir, 'running');
  const ac = new AbortController();
  const run = runHook(waiting(file), {}, ac.signal);
  let pids: number[] = [];
  for (let i = 0; i < 100 && pids.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
    pids = (await readFile(file, 'utf8').catch(() => '')).trim().split(' ').filter(Boolean).map(Number);
  }
  expect(pids).toHaveLength(2);
  ac.abort();
  await expect(run).rejects.toMatchObject({ type: 'Cancelled' });
  for (const pid of pids) expect(processAlive(pid)).toBe(false);
});
