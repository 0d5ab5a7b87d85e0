import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { stringify } from 'yaml';
import { makeBackupId } from '../../src/domain/names';
import type { DrillResult } from '../../src/domain/plan';
import { lifeboat } from '../helpers/cli';
import { stackConfig, testEnv, withTaskQueue } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';
import { startHarness, type Harness } from '../helpers/temporal';

/**
 * `lifeboat report --max-rpo` exit codes and `report --html`, over what real
 * backups and drills left in this file's repository prefix; the page is
 * opened in headless Chromium (Debian's chromium; scripts/stack.sh installs
 * it) with every request that is not the file itself refused.
 */
const CHROMIUM = '/usr/bin/chromium';
const env = testEnv('reporthtml');
const config = withTaskQueue(env.config, env.taskQueue);
const db = env.databases[0]!;
let h: Harness;
let dir: string;
/** app-pg only. */
let oneTarget: string;
/** app-pg and idle-pg, which was never backed up. */
let twoTargets: string;
const drills: DrillResult[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-report-html-'));
  const base = stackConfig();
  const pg = base.targets.get('app-pg')!.settings;
  // The stack signs manifests: the report counts only those its signing.publicKeys trust.
  const signing = base.signing ? { signing: { publicKeys: base.signing.publicKeys } } : {};
  const doc = (targets: Record<string, unknown>) => stringify({ temporal: { ...base.temporal, taskQueue: env.taskQueue }, repository: env.config.repository, encryption: base.encryption, ...signing, targets });
  oneTarget = join(dir, 'one.yaml');
  twoTargets = join(dir, 'two.yaml');
  await writeFile(oneTarget, doc({ 'app-pg': { ...pg, databases: [db] } }));
  await writeFile(twoTargets, doc({ 'app-pg': { ...pg, databases: [db] }, 'idle-pg': { ...pg, databases: [`${db}_idle`] } }));
  await createDatabase(config, db);
  await seedApp(config, db, 50);
  h = await startHarness(config);
  await h.run('backupWorkflow', { targets: ['app-pg'], backupId: makeBackupId(new Date(), 'a001') });
  drills.push(await h.run<DrillResult>('drillWorkflow', { mode: 'scratch' }));
  drills.push(await h.run<DrillResult>('drillWorkflow', { mode: 'scratch' }));
});

afterAll(async () => {
  await h?.stop();
  await dropDatabase(config, db);
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('--max-rpo: exit 0 when every target is within it', async () => {
  const r = await lifeboat(oneTarget, 'report', '--max-rpo', '26h', '--json');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, maxRpoSeconds: 26 * 3600, overBudget: [] });
  const human = await lifeboat(oneTarget, 'report', '--max-rpo', '7d');
  expect(human.code).toBe(0);
  expect(human.stdout).toContain('every target within the RPO budget (7d)');
});

test('--max-rpo: exit 5 naming the targets over it (a target never backed up is over any budget)', async () => {
  const r = await lifeboat(twoTargets, 'report', '--max-rpo', '26h', '--json');
  expect(r.code).toBe(5);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, overBudget: [{ target: 'idle-pg', rpoSeconds: null }] });
  const human = await lifeboat(twoTargets, 'report', '--max-rpo', '90m');
  expect(human.code).toBe(5);
  expect(human.stdout).toMatch(/^RPO over budget \(90m\): idle-pg never backed up$/m);
});

test('--max-rpo that is not a duration is a usage error', async () => {
  const r = await lifeboat(oneTarget, 'report', '--max-rpo', 'tomorrow');
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("--max-rpo must be a duration like 90m, 26h or 7d, not 'tomorrow'");
});

test('--html: one self-contained page whose table and plots render in headless Chromium', async () => {
  expect(existsSync(CHROMIUM)).toBe(true); // scripts/stack.sh up installs Debian's chromium
  const file = join(dir, 'report.html');
  const r = await lifeboat(twoTargets, 'report', '--html', file, '--max-rpo', '26h');
  expect(r.code).toBe(5);
  expect(r.stderr).toContain(`wrote ${file}`);
  const html = await readFile(file, 'utf8');
  // Nothing to fetch: no script, no stylesheet or image by URL.
  expect(html).not.toMatch(/<script|<link|\bsrc=|url\(|https?:\/\/(?!www\.w3\.org)/i);

  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const page = await browser.newPage({ viewport: { width: 900, height: 1400 } });
    const fetched: string[] = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file://')) return route.continue();
      fetched.push(url);
      return route.abort();
    });
    await page.goto(`file://${file}`);
    expect(fetched).toEqual([]);

    expect(await page.locator('#targets tbody tr').count()).toBe(2);
    expect(await page.locator('#targets tr[data-target="idle-pg"] td.bad').textContent()).toBe('never');
    // One point per backup (the plain one and each drill's), one per drill's restore, and the RPO's teeth.
    const points = (id: string, series: string) => page.locator(`#${id} g.series[data-series="${series}"] circle`).count();
    expect(await points('plot-backup', 'app-pg')).toBe(3);
    expect(await points('plot-restore', 'app-pg')).toBe(2);
    expect(await points('plot-rpo', 'app-pg')).toBe(3);
    expect(await page.locator('#plot-rpo line.budget').count()).toBe(1);
    for (const id of ['plot-backup', 'plot-restore', 'plot-rpo']) {
      const box = await page.locator(`#${id}`).boundingBox();
      expect(box!.width).toBeGreaterThan(300);
      expect(box!.height).toBeGreaterThan(100);
      expect(await page.locator(`#${id} polyline`).count()).toBeGreaterThan(0);
    }
    const restoreTitle = await page.locator('#plot-restore circle title').first().textContent();
    expect(restoreTitle).toContain(`app-pg: ${Math.round(drills[0]!.stores[0]!.restoreSeconds * 10) / 10}`);

    // Kept after the test (outside the folder it removes), so a person can look at it.
    const shots = await mkdtemp(join(tmpdir(), 'lifeboat-report-html-shot-'));
    const png = join(shots, 'report.png');
    await page.screenshot({ path: png, fullPage: true });
    expect((await readFile(png)).subarray(1, 4).toString()).toBe('PNG');
    console.log(`report --html screenshot: ${png}`);
  } finally {
    await browser?.close();
  }
});
