import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load';
import type { Manifest } from '../../src/domain/manifest';
import { LifeboatError } from '../../src/errors';
import { writeManifest } from '../../src/repo/catalog';
import { LocalRepository } from '../../src/repo/local';
import type { BackupItem, StoreContext } from '../../src/stores';
import { ClickhouseStore } from '../../src/stores/clickhouse';
import { ClickhouseHttp } from '../../src/stores/clickhouse/http';
import { backupStatement, backupUrl, findQuery, NativeStrategy, phaseOf, restoreStatement, s3Expr, statusQuery, type NativeDescriptor } from '../../src/stores/clickhouse/native';
import { ch, clickhouseStore } from '../contract/clickhouse-kind';
import { stackConfig, uniq } from '../helpers/env';

const KEY = 'AKIA\'odd';
const SECRET = "s3cr3t/'\\x";

describe('native statements', () => {
  it('builds BACKUP, RESTORE and the status queries exactly, quoting names and keys', () => {
    const to = { url: 'https://b.s3.amazonaws.com/ch/events-ch/events/20261125T020000Z-ab12cd-0f0f', accessKeyId: KEY, secretAccessKey: SECRET };
    expect(s3Expr(to)).toBe("S3('https://b.s3.amazonaws.com/ch/events-ch/events/20261125T020000Z-ab12cd-0f0f', 'AKIA\\'odd', 's3cr3t/\\'\\\\x')");
    expect(s3Expr({ url: 'https://b/x' })).toBe("S3('https://b/x')");
    expect(backupStatement('events', { url: 'https://b/x' })).toBe("BACKUP DATABASE `events` TO S3('https://b/x') ASYNC");
    expect(backupStatement('my-db', { url: 'https://b/new', accessKeyId: 'k', secretAccessKey: 's' }, { url: 'https://b/old', accessKeyId: 'k', secretAccessKey: 's' })).toBe(
      "BACKUP DATABASE `my-db` TO S3('https://b/new', 'k', 's') SETTINGS base_backup = S3('https://b/old', 'k', 's') ASYNC",
    );
    expect(restoreStatement('events', 'lifeboat_drill_1a2b3c4d', { url: 'https://b/x', accessKeyId: 'k', secretAccessKey: 's' })).toBe(
      "RESTORE DATABASE `events` AS `lifeboat_drill_1a2b3c4d` FROM S3('https://b/x', 'k', 's') ASYNC",
    );
    expect(statusQuery("a'b")).toBe("SELECT * FROM system.backups WHERE id = 'a\\'b'");
    expect(findQuery('https://b/x')).toBe("SELECT * FROM system.backups WHERE position(name, 'https://b/x') > 0 ORDER BY start_time DESC");
    expect(backupUrl('https://b/ch', 'events-ch', 'events', 'r1')).toBe('https://b/ch/events-ch/events/r1');
    expect(() => backupUrl('https://b/ch', 'events-ch', '../x', 'r1')).toThrow(/not a valid name/);
  });

  it('knows the statuses of 22.8 and later', () => {
    expect(['CREATING_BACKUP', 'RESTORING', 'MAKING_BACKUP'].map(phaseOf)).toEqual(['running', 'running', 'running']);
    expect(['BACKUP_CREATED', 'BACKUP_COMPLETE', 'RESTORED'].map(phaseOf)).toEqual(['done', 'done', 'done']);
    expect(['BACKUP_FAILED', 'FAILED_TO_BACKUP', 'RESTORE_FAILED', 'BACKUP_CANCELLED'].map(phaseOf)).toEqual(['failed', 'failed', 'failed', 'failed']);
  });
});

interface Op {
  id: string;
  name: string;
  status: string;
  error: string;
  polls: number;
  num_files: string;
  uncompressed_size: string;
  compressed_size: string;
}

/**
 * A stand-in for a 22.8+ server's HTTP interface, as far as the native strategy
 * talks to it: BACKUP/RESTORE … ASYNC answer an id, system.backups reports
 * progress and the end after a few polls.
 */
async function fakeServer(opts: { failWith?: string; pollsToFinish?: number } = {}) {
  const queries: string[] = [];
  const urls: string[] = [];
  const auth: Array<string | undefined> = [];
  const ops: Op[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const q = Buffer.concat(chunks).toString('utf8');
      queries.push(q);
      urls.push(req.url ?? '');
      auth.push(req.headers['x-clickhouse-key'] as string | undefined);
      const json = (rows: object[]) => res.end(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
      let m: RegExpExecArray | null;
      if (q === 'SELECT version()') return res.end('23.8.9.54\n');
      if (q.startsWith("SELECT count() FROM system.tables WHERE database = 'system' AND name = 'backups'")) return res.end('1\n');
      if (q.startsWith('SELECT name FROM system.databases')) return json([{ name: 'events' }]);
      if ((m = /^(BACKUP|RESTORE) .* (?:TO|FROM) S3\('([^']*)'/.exec(q))) {
        const op: Op = { id: randomUUID(), name: `S3('${m[2]}', 'AKIA[HIDDEN]', '[HIDDEN]')`, status: m[1] === 'BACKUP' ? 'CREATING_BACKUP' : 'RESTORING', error: '', polls: 0, num_files: '0', uncompressed_size: '0', compressed_size: '0' };
        ops.push(op);
        return json([{ id: op.id, status: op.status }]);
      }
      if ((m = /^SELECT \* FROM system\.backups WHERE id = '([^']*)'/.exec(q))) {
        const op = ops.find((o) => o.id === m![1]);
        if (op && ++op.polls >= (opts.pollsToFinish ?? 3) && /ING/.test(op.status)) {
          if (opts.failWith) {
            op.status = op.status === 'RESTORING' ? 'RESTORE_FAILED' : 'BACKUP_FAILED';
            op.error = opts.failWith;
          } else {
            op.status = op.status === 'RESTORING' ? 'RESTORED' : 'BACKUP_CREATED';
            Object.assign(op, { num_files: '12', uncompressed_size: '123456', compressed_size: '23456' });
          }
        }
        return json(op ? [op] : []);
      }
      if ((m = /^SELECT \* FROM system\.backups WHERE position\(name, '([^']*)'\) > 0/.exec(q))) return json(ops.filter((o) => o.name.includes(m![1]!)).reverse());
      if (q.startsWith('DROP DATABASE IF EXISTS')) return res.end('');
      res.statusCode = 500;
      res.end(`Code: 62. DB::Exception: fake server does not know: ${q}. (SYNTAX_ERROR)`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, queries, urls, auth, ops, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const logs: string[] = [];
const progress: Array<{ stage: string; bytes?: number }> = [];
const ctx: StoreContext = {
  signal: new AbortController().signal,
  progress: (p) => progress.push(p),
  log: { info: (m, meta) => logs.push(`${m} ${JSON.stringify(meta)}`), warn: (m, meta) => logs.push(`${m} ${JSON.stringify(meta)}`) },
};

function strategy(url: string, extra: { incremental?: boolean; fullEvery?: number } = {}): NativeStrategy {
  process.env.LIFEBOAT_TEST_S3_KEY = KEY;
  process.env.LIFEBOAT_TEST_S3_SECRET = SECRET;
  const s = new NativeStrategy(new ClickhouseHttp({ url, user: 'lifeboat', password: 'ch-pw', target: 'events-ch' }), 'events-ch', {
    url: 'https://b.s3.amazonaws.com/ch',
    accessKeyId: { env: 'LIFEBOAT_TEST_S3_KEY' },
    secretAccessKey: { env: 'LIFEBOAT_TEST_S3_SECRET' },
    incremental: extra.incremental ?? false,
    fullEvery: extra.fullEvery ?? 7,
  });
  s.pollMs = 5;
  return s;
}

async function collect(s: NativeStrategy, item: BackupItem, c: StoreContext = ctx): Promise<NativeDescriptor> {
  let text = '';
  await s.backup(c, item, async (plaintext) => {
    for await (const chunk of plaintext) text += (chunk as Buffer).toString();
  });
  return JSON.parse(text) as NativeDescriptor;
}

describe('native strategy against a stand-in server', () => {
  it('runs BACKUP … ASYNC, follows system.backups, and stores a descriptor; keys only in the statement', async () => {
    const fake = await fakeServer();
    try {
      const s = strategy(fake.url);
      const [item] = s.items(['events']);
      expect(item).toMatchObject({ item: 'database:events', name: 'events', file: 'events.native-backup.json', format: 'clickhouse-native-backup' });
      const d = await collect(s, item!);
      const backup = fake.queries.find((q) => q.startsWith('BACKUP'))!;
      expect(backup).toMatch(/^BACKUP DATABASE `events` TO S3\('https:\/\/b\.s3\.amazonaws\.com\/ch\/events-ch\/events\/\d{8}T\d{6}Z-[0-9a-f]{6}-[0-9a-f]{4}', 'AKIA\\'odd', 's3cr3t\/\\'\\\\x'\) ASYNC$/);
      expect(d).toMatchObject({ format: 'lifeboat-clickhouse-native-backup', database: 'events', chain: 0, numFiles: 12, uncompressedBytes: 123456, compressedBytes: 23456 });
      expect(backup).toContain(`S3('${d.url}',`);
      expect(item!.meta).toMatchObject({ url: d.url, backupId: d.backupId, chain: 0 });
      expect(fake.queries.filter((q) => q.startsWith('SELECT * FROM system.backups WHERE id')).length).toBe(3);
      expect(progress.some((p) => p.stage === 'backup')).toBe(true);
      // Credentials: the ClickHouse password in a header, never in a URL; the S3 keys nowhere but in the statement.
      expect(fake.auth.every((a) => a === 'ch-pw')).toBe(true);
      expect(fake.urls.join(' ')).not.toMatch(/ch-pw|s3cr3t|AKIA/);
      expect(logs.join('\n')).not.toMatch(/s3cr3t|AKIA/);
    } finally {
      await fake.close();
    }
  });

  it('fails with the server\'s error text, keys hidden', async () => {
    const fake = await fakeServer({ failWith: `Code: 499. DB::Exception: The AWS Access Key Id you provided does not exist: S3('https://b/x', '${KEY}', '${SECRET}'). (S3_ERROR) (version 23.8.9.54)` });
    try {
      const s = strategy(fake.url);
      const err = (await collect(s, s.items(['events'])[0]!).catch((e: unknown) => e)) as LifeboatError;
      expect(err.type).toBe('NativeBackupFailed');
      expect(err.message).toMatch(/^clickhouse lifeboat@127\.0\.0\.1:\d+ \(target events-ch\): BACKUP DATABASE events ended BACKUP_FAILED: Code 499: The AWS Access Key Id you provided does not exist: S3\('https:\/\/b\/x', '\[HIDDEN\]', '\[HIDDEN\]'\)/);
      expect(err.message).not.toMatch(/s3cr3t|AKIA'odd/);
      expect(err.permanent).toBe(false);
    } finally {
      await fake.close();
    }
  });

  it('a retry follows the operation a crashed attempt started instead of starting another', async () => {
    const fake = await fakeServer({ pollsToFinish: 4 });
    try {
      const s = strategy(fake.url);
      const [item] = s.items(['events']);
      const crashed = new AbortController();
      const first = collect(s, item!, { ...ctx, signal: crashed.signal }).catch((e: unknown) => e);
      while (!fake.queries.some((q) => q.startsWith('SELECT * FROM system.backups WHERE id'))) await new Promise((r) => setTimeout(r, 2));
      crashed.abort();
      expect(((await first) as LifeboatError).type).toBe('Cancelled');
      const d = await collect(s, item!);
      expect(fake.queries.filter((q) => q.startsWith('BACKUP')).length).toBe(1);
      expect(d.backupId).toBe(fake.ops[0]!.id);
    } finally {
      await fake.close();
    }
  });

  it('incremental: the previous backup in the repository is the base, until the chain is fullEvery long', async () => {
    const fake = await fakeServer();
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-ch-native-'));
    try {
      const repo = new LocalRepository(dir);
      const withRepo: StoreContext = { ...ctx, repository: { repo, dir: 'events-ch' } };
      const previous = (backupId: string, meta: Partial<NativeDescriptor>): Manifest => ({
        schema: 1,
        backupId,
        target: 'events-ch',
        kind: 'clickhouse',
        server: { version: '23.8.9.54' },
        tools: {},
        lifeboatVersion: '0.1.0',
        startedAt: '2026-11-24T02:00:00Z',
        finishedAt: '2026-11-24T02:01:00Z',
        encryption: { format: 'none', recipients: [] },
        artifacts: [{ file: 'events.native-backup.json', item: 'database:events', name: 'events', format: 'clickhouse-native-backup', encryption: 'none', bytes: 10, sha256: 'a'.repeat(64), seconds: 1, meta }],
      });
      await writeManifest(repo, previous('20261123T020000Z-aaaa', { url: 'https://b.s3.amazonaws.com/ch/events-ch/events/older', chain: 0 }));
      await writeManifest(repo, previous('20261124T020000Z-bbbb', { url: 'https://b.s3.amazonaws.com/ch/events-ch/events/prev', chain: 1 }));

      const d = await collect(strategy(fake.url, { incremental: true, fullEvery: 3 }), strategy(fake.url).items(['events'])[0]!, withRepo);
      expect(fake.queries.find((q) => q.startsWith('BACKUP'))).toMatch(/ SETTINGS base_backup = S3\('https:\/\/b\.s3\.amazonaws\.com\/ch\/events-ch\/events\/prev', 'AKIA\\'odd', 's3cr3t\/\\'\\\\x'\) ASYNC$/);
      expect(d).toMatchObject({ baseUrl: 'https://b.s3.amazonaws.com/ch/events-ch/events/prev', chain: 2 });

      await writeManifest(repo, previous('20261125T020000Z-cccc', { url: d.url, chain: 2 }));
      fake.queries.length = 0;
      const full = await collect(strategy(fake.url, { incremental: true, fullEvery: 3 }), strategy(fake.url).items(['events'])[0]!, withRepo);
      expect(fake.queries.find((q) => q.startsWith('BACKUP'))).not.toContain('base_backup');
      expect(full.chain).toBe(0);
    } finally {
      await fake.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('restores: DROP DATABASE IF EXISTS into, then RESTORE … AS into, followed to the end', async () => {
    const fake = await fakeServer();
    try {
      const s = strategy(fake.url);
      const [item] = s.items(['events']);
      const d = await collect(s, item!);
      fake.queries.length = 0;
      await s.restore(ctx, item!, 'lifeboat_drill_1a2b3c4d', Readable.from([Buffer.from(JSON.stringify(d))]));
      expect(fake.queries[0]).toBe('DROP DATABASE IF EXISTS `lifeboat_drill_1a2b3c4d`');
      expect(fake.queries[1]).toBe(`RESTORE DATABASE \`events\` AS \`lifeboat_drill_1a2b3c4d\` FROM S3('${d.url}', 'AKIA\\'odd', 's3cr3t/\\'\\\\x') ASYNC`);
      expect(fake.ops[1]!.status).toBe('RESTORED');
      const bad = await s.restore(ctx, item!, 'x', Readable.from([Buffer.from('{"format":"other"}')])).catch((e: unknown) => e);
      expect((bad as LifeboatError).type).toBe('ManifestInvalid');
    } finally {
      await fake.close();
    }
  });

  it('auto picks native on a server with BACKUP when a nativeBackupUrl is configured', async () => {
    const fake = await fakeServer();
    try {
      const target = (settings: Record<string, unknown>) =>
        parseConfig(stringify({ repository: { kind: 'local', path: '/x' }, encryption: 'none', targets: { 'events-ch': { kind: 'clickhouse', url: fake.url, databases: ['events'], ...settings } } }), '/etc/lifeboat.yaml').targets.get('events-ch')!;
      const native = new ClickhouseStore('/etc/lifeboat.yaml', target({ nativeBackupUrl: 'https://b.s3.amazonaws.com/ch' }));
      expect((await native.probe(ctx)).capabilities).toEqual(['logical', 'native', 'strategy:native']);
      expect((await native.items(ctx)).map((i) => i.format)).toEqual(['clickhouse-native-backup']);
      const withoutUrl = new ClickhouseStore('/etc/lifeboat.yaml', target({}));
      expect((await withoutUrl.probe(ctx)).capabilities).toEqual(['logical', 'native', 'strategy:logical']);
    } finally {
      await fake.close();
    }
  });
});

test('a native backup is not restored on 18.16, and nothing is dropped first', async () => {
  const keep = uniq('chkeep');
  await ch(`CREATE DATABASE ${keep}`);
  try {
    const s = clickhouseStore(['events'], { nativeBackupUrl: 'https://b.s3.amazonaws.com/ch' });
    const item: BackupItem = { item: 'database:events', name: 'events', file: 'events.native-backup.json', format: 'clickhouse-native-backup' };
    const source = Readable.from([Buffer.from('{}')]);
    const err = (await s.restore(ctx, item, keep, source).catch((e: unknown) => e)) as LifeboatError;
    expect(err.type).toBe('ConfigError');
    expect(err.message).toMatch(/made with BACKUP DATABASE \(strategy native\), and ClickHouse 18\.16\.\d+ has no RESTORE .* Nothing was dropped$/);
    expect(source.destroyed).toBe(true);
    expect((await ch(`SELECT count() FROM system.databases WHERE name = '${keep}'`)).trim()).toBe('1');
  } finally {
    await ch(`DROP DATABASE IF EXISTS ${keep}`);
  }
});

test('strategy native on 18.16 is a permanent configuration error that says what to do', async () => {
  const s = clickhouseStore(['events'], { strategy: 'native', nativeBackupUrl: 'https://b.s3.amazonaws.com/ch' });
  const err = (await s.items(ctx).catch((e: unknown) => e)) as LifeboatError;
  expect(err.type).toBe('ConfigError');
  expect(err.message).toMatch(/ClickHouse 18\.16\.\d+ has no BACKUP … TO S3 \(it needs 22\.8 or newer\); set targets\.events-ch\.strategy to logical or auto/);
  expect(s.isPermanent(err)).toBe(true);
});

/**
 * Against a real server with BACKUP (22.8+), only when one is given:
 *   LIFEBOAT_TEST_CLICKHOUSE_URL=http://host:8123 LIFEBOAT_TEST_CLICKHOUSE_USER=default
 *   LIFEBOAT_TEST_CLICKHOUSE_PASSWORD=… LIFEBOAT_TEST_CLICKHOUSE_S3_URL=https://…/bucket/prefix
 *   LIFEBOAT_TEST_CLICKHOUSE_S3_KEY=… LIFEBOAT_TEST_CLICKHOUSE_S3_SECRET=…   (keys optional)
 * Without LIFEBOAT_TEST_CLICKHOUSE_URL the block is describe.skip: jest lists
 * its test as skipped (○) and counts it under "skipped", never as passed.
 */
const REAL = process.env.LIFEBOAT_TEST_CLICKHOUSE_URL;
(REAL ? describe : describe.skip)(`native strategy on a real 22.8+ server (${REAL ? REAL : 'skipped: set LIFEBOAT_TEST_CLICKHOUSE_URL to run'})`, () => {
  it('backs up a database to S3 and restores it under another name', async () => {
    const db = uniq('chnative');
    const settings = {
      kind: 'clickhouse',
      url: REAL,
      user: process.env.LIFEBOAT_TEST_CLICKHOUSE_USER ?? 'default',
      ...(process.env.LIFEBOAT_TEST_CLICKHOUSE_PASSWORD ? { password: { env: 'LIFEBOAT_TEST_CLICKHOUSE_PASSWORD' } } : {}),
      databases: [db],
      strategy: 'native',
      nativeBackupUrl: {
        url: process.env.LIFEBOAT_TEST_CLICKHOUSE_S3_URL,
        ...(process.env.LIFEBOAT_TEST_CLICKHOUSE_S3_KEY ? { accessKeyId: { env: 'LIFEBOAT_TEST_CLICKHOUSE_S3_KEY' }, secretAccessKey: { env: 'LIFEBOAT_TEST_CLICKHOUSE_S3_SECRET' } } : {}),
      },
    };
    const file = stackConfig().file;
    const store = new ClickhouseStore(file, parseConfig(stringify({ repository: { kind: 'local', path: '/x' }, encryption: 'none', targets: { 'real-ch': settings } }), file).targets.get('real-ch')!);
    const exec = async (sql: string) => {
      const h = new ClickhouseHttp({ url: REAL!, user: settings.user, password: process.env.LIFEBOAT_TEST_CLICKHOUSE_PASSWORD, target: 'real-ch' });
      return h.text({ sql, what: 'test', signal: ctx.signal });
    };
    await exec(`CREATE DATABASE ${db}`);
    try {
      await exec(`CREATE TABLE ${db}.t (id UInt64, s String) ENGINE = MergeTree ORDER BY id`);
      await exec(`INSERT INTO ${db}.t SELECT number, toString(number) FROM numbers(10000)`);
      expect((await store.probe(ctx)).capabilities).toContain('native');
      const [item] = await store.items(ctx);
      let descriptor = Buffer.alloc(0);
      await store.backup(ctx, item!, async (p) => {
        for await (const c of p) descriptor = Buffer.concat([descriptor, c as Buffer]);
      });
      await store.restore(ctx, item!, `${db}_copy`, Readable.from([descriptor]));
      expect((await exec(`SELECT count() FROM ${db}_copy.t`)).trim()).toBe('10000');
    } finally {
      await exec(`DROP DATABASE IF EXISTS ${db}`);
      await exec(`DROP DATABASE IF EXISTS ${db}_copy`);
    }
  });
});

// The stack's server must be reachable for the 18.16 test above; fail early and clearly if not.
beforeAll(async () => {
  await ch('SELECT 1');
});
