import { parseConfig } from '../../src/config/load';
import { LifeboatError } from '../../src/errors';
import { versionAtLeast } from '../../src/stores/clickhouse';
import { findTrailingException, parseException, redact } from '../../src/stores/clickhouse/errors';
import { NativeValidator } from '../../src/stores/clickhouse/native-format';
import { layoutOf } from '../../src/stores/clickhouse/native-types';
import { fileName } from '../../src/stores/clickhouse/schema';
import { parseClickhouseSettings } from '../../src/stores/clickhouse/settings';
import { quoteIdent, quoteString, referencedTables, rewriteCreate, tokenize } from '../../src/stores/clickhouse/sql';
import { ch, chBytes } from '../contract/clickhouse-kind';

/** The pure parts of the clickhouse kind, checked against 18.16's own output where it matters. */

describe('quoting', () => {
  it('backquotes identifiers and escapes backslash, backquote and control characters', () => {
    expect(quoteIdent('events')).toBe('`events`');
    expect(quoteIdent('we`ird\\ na\'me\n')).toBe('`we\\`ird\\\\ na\'me\\n`');
    expect(quoteString("it's \\ `x`")).toBe("'it\\'s \\\\ `x`'");
  });

  it('round-trips through the server: what we quote is what it reads', async () => {
    const odd = "a`b'c\\d\te ü";
    expect(await ch(`SELECT ${quoteString(odd)} AS ${quoteIdent(odd)} FORMAT JSONEachRow`)).toBe(`${JSON.stringify({ [odd]: odd })}\n`);
  });

  it('tokenizes losslessly, with quoted names unescaped', () => {
    const sql = "CREATE TABLE `my-db`.`t\\`1` (x String DEFAULT 'a\\'b') -- note\nENGINE = Log /* c */";
    const tokens = tokenize(sql);
    expect(tokens.map((t) => t.text).join('')).toBe(sql);
    expect(tokens.filter((t) => t.kind === 'ident').map((t) => t.value)).toEqual(['my-db', 't`1']);
    expect(tokens.find((t) => t.kind === 'string')!.value).toBe("a'b");
  });
});

describe('rewriteCreate', () => {
  const r = (sql: string, name: string, extra: { from?: string; to?: string; dereplicate?: boolean } = {}) => rewriteCreate(sql, { from: 'events', to: 'copy_1', name, ...extra });

  it('rewrites the head of a table as 18.16 prints it, nothing else', () => {
    const sql = "CREATE TABLE events.t ( id UInt64,  events String DEFAULT 'events.t') ENGINE = MergeTree ORDER BY id SETTINGS index_granularity = 8192";
    expect(r(sql, 't')).toBe("CREATE TABLE `copy_1`.t ( id UInt64,  events String DEFAULT 'events.t') ENGINE = MergeTree ORDER BY id SETTINGS index_granularity = 8192");
  });

  it('rewrites a materialized view\'s TO and FROM, a view\'s JOIN and IN, but not literals or other databases', () => {
    const mv = "CREATE MATERIALIZED VIEW events.mv TO events.agg ( k UInt64,  c UInt64) AS SELECT toUInt64(id % 10) AS k, count() AS c FROM events.t  WHERE s != 'FROM events.t' AND id IN (SELECT id FROM other.ids) GROUP BY k";
    expect(r(mv, 'mv')).toBe(
      "CREATE MATERIALIZED VIEW `copy_1`.mv TO `copy_1`.agg ( k UInt64,  c UInt64) AS SELECT toUInt64(id % 10) AS k, count() AS c FROM `copy_1`.t  WHERE s != 'FROM events.t' AND id IN (SELECT id FROM other.ids) GROUP BY k",
    );
    const v = 'CREATE VIEW events.v2 ( id UInt64) AS SELECT a.id FROM events.t AS a  ANY LEFT JOIN (SELECT id FROM events.v ) AS b USING (id) WHERE id IN events.allowed';
    expect(r(v, 'v2')).toBe('CREATE VIEW `copy_1`.v2 ( id UInt64) AS SELECT a.id FROM `copy_1`.t AS a  ANY LEFT JOIN (SELECT id FROM `copy_1`.v ) AS b USING (id) WHERE id IN `copy_1`.allowed');
    expect(referencedTables(v, 'events', 'v2')).toEqual(['allowed', 't', 'v']);
    expect(referencedTables(mv, 'events', 'mv')).toEqual(['agg', 't']);
  });

  it('handles database names that need quoting, and odd table names', () => {
    const sql = 'CREATE MATERIALIZED VIEW `lbx-2`.`m v` TO `lbx-2`.dst ( k UInt64,  c UInt64) AS SELECT k, c FROM `lbx-2`.src';
    expect(rewriteCreate(sql, { from: 'lbx-2', to: 'lbx-3', name: 'm v' })).toBe('CREATE MATERIALIZED VIEW `lbx-3`.`m v` TO `lbx-3`.dst ( k UInt64,  c UInt64) AS SELECT k, c FROM `lbx-3`.src');
  });

  it('points Buffer and Merge at the copy, leaves Distributed alone', () => {
    expect(r('CREATE TABLE events.buf ( id UInt64) ENGINE = Buffer(events, src, 16, 10, 100, 10000, 1000000, 10000000, 100000000)', 'buf')).toBe(
      'CREATE TABLE `copy_1`.buf ( id UInt64) ENGINE = Buffer(`copy_1`, src, 16, 10, 100, 10000, 1000000, 10000000, 100000000)',
    );
    expect(r("CREATE TABLE events.m ( id UInt64) ENGINE = Merge('events', '^s')", 'm')).toBe("CREATE TABLE `copy_1`.m ( id UInt64) ENGINE = Merge('copy_1', '^s')");
    expect(r("CREATE TABLE events.d ( id UInt64) ENGINE = Distributed(c, events, t, rand())", 'd')).toBe("CREATE TABLE `copy_1`.d ( id UInt64) ENGINE = Distributed(c, events, t, rand())");
  });

  it('turns a Replicated engine into its plain one for a copy under another name', () => {
    const sql = "CREATE TABLE events.r ( id UInt64,  v UInt32) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/events/r', '{replica}', v) ORDER BY id";
    expect(r(sql, 'r', { dereplicate: true })).toBe('CREATE TABLE `copy_1`.r ( id UInt64,  v UInt32) ENGINE = ReplacingMergeTree(  v) ORDER BY id');
    expect(r("CREATE TABLE events.r ( id UInt64) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY id", 'r', { dereplicate: true })).toBe('CREATE TABLE `copy_1`.r ( id UInt64) ENGINE = MergeTree( ) ORDER BY id');
    expect(r('CREATE TABLE events.r ( id UInt64) ENGINE = ReplicatedMergeTree ORDER BY id', 'r', { dereplicate: true })).toBe('CREATE TABLE `copy_1`.r ( id UInt64) ENGINE = MergeTree ORDER BY id');
    expect(r(sql, 'r')).toContain("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/events/r', '{replica}', v)");
  });

  it('refuses a statement whose head does not name the object', () => {
    expect(() => r('CREATE TABLE other.t (x UInt8) ENGINE = Log', 't')).toThrow(/names database "other", not "events"/);
    expect(() => r('CREATE TABLE events.u (x UInt8) ENGINE = Log', 't')).toThrow(/does not name the table "t"/);
    expect(() => r('DROP TABLE events.t', 't')).toThrow(LifeboatError);
  });

  it('produces statements 18.16 accepts', async () => {
    const from = `sqlrw_${Date.now().toString(36)}`;
    const to = `${from}-copy`;
    try {
      await ch(`CREATE DATABASE ${quoteIdent(from)}`);
      await ch(`CREATE DATABASE ${quoteIdent(to)}`);
      await ch(`CREATE TABLE ${quoteIdent(from)}.src (id UInt64, \`from\` String) ENGINE = MergeTree ORDER BY id`);
      await ch(`CREATE TABLE ${quoteIdent(from)}.dst (k UInt64, c UInt64) ENGINE = SummingMergeTree ORDER BY k`);
      await ch(`CREATE MATERIALIZED VIEW ${quoteIdent(from)}.mv TO ${quoteIdent(from)}.dst AS SELECT toUInt64(id % 10) AS k, toUInt64(count()) AS c FROM ${quoteIdent(from)}.src WHERE \`from\` != '${from}.src' GROUP BY k`);
      await ch(`CREATE TABLE ${quoteIdent(from)}.buf AS ${quoteIdent(from)}.src ENGINE = Buffer(${quoteIdent(from)}, src, 16, 10, 100, 10000, 1000000, 10000000, 100000000)`);
      const rows = (await ch(`SELECT name, create_table_query FROM system.tables WHERE database = '${from}' ORDER BY engine LIKE '%View', name FORMAT JSONEachRow`))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { name: string; create_table_query: string });
      for (const row of rows) await ch(rewriteCreate(row.create_table_query, { from, to, name: row.name }));
      await ch(`INSERT INTO ${quoteIdent(to)}.src VALUES (1, 'x'), (2, 'y')`);
      expect((await ch(`SELECT sum(c) FROM ${quoteIdent(to)}.dst`)).trim()).toBe('2');
      expect((await ch(`SELECT count() FROM ${quoteIdent(from)}.dst`)).trim()).toBe('0');
    } finally {
      await ch(`DROP DATABASE IF EXISTS ${quoteIdent(from)}`);
      await ch(`DROP DATABASE IF EXISTS ${quoteIdent(to)}`);
    }
  });
});

describe('Native layouts', () => {
  it('knows the types tables have, and says so when it does not', () => {
    expect(layoutOf('UInt64')).toEqual({ k: 'fixed', size: 8 });
    expect(layoutOf("DateTime('Europe/Berlin')")).toEqual({ k: 'fixed', size: 4 });
    expect(layoutOf("Enum8('a,b' = 1, 'c)' = 2)")).toEqual({ k: 'fixed', size: 1 });
    expect(layoutOf('Decimal(20, 4)')).toEqual({ k: 'fixed', size: 16 });
    expect(layoutOf('FixedString(3)')).toEqual({ k: 'fixed', size: 3 });
    expect(layoutOf('Array(Nullable(String))')).toEqual({ k: 'array', inner: { k: 'nullable', inner: { k: 'string' } } });
    expect(layoutOf('Tuple(a String, `b c` UInt8)')).toEqual({ k: 'tuple', items: [{ k: 'string' }, { k: 'fixed', size: 1 }] });
    expect(layoutOf('Map(String, UInt64)')).toEqual({ k: 'array', inner: { k: 'tuple', items: [{ k: 'string' }, { k: 'fixed', size: 8 }] } });
    expect(layoutOf('LowCardinality(Nullable(String))')).toEqual({ k: 'lowcard', dict: { k: 'string' } });
    expect(layoutOf('SimpleAggregateFunction(sum, UInt64)')).toEqual({ k: 'fixed', size: 8 });
    expect(layoutOf('AggregateFunction(uniq, UInt8)')).toBeUndefined();
    expect(layoutOf('Object(\'json\')')).toBeUndefined();
  });
});

describe('NativeValidator on 18.16 streams', () => {
  const QUERY = `SELECT number, toString(number) AS s, if(number % 3 = 0, NULL, toString(number)) AS ns, arrayMap(x -> toString(x), range(number % 5)) AS arr,
    [range(number % 3), []] AS aa, toFixedString('abc', 3) AS fs, toDecimal64(number, 4) AS dec, generateUUIDv4() AS u, toDate(number) AS d, toDateTime(number) AS dt,
    toFloat32(number) AS f, tuple(toString(number), range(number % 2)) AS t, CAST('a' AS Enum8('a' = 1, 'b' = 2)) AS e, toLowCardinality(toString(number % 10)) AS lc,
    CAST([toString(number % 4), 'x'] AS Array(LowCardinality(String))) AS alc, toLowCardinality(if(number % 2 = 0, NULL, toString(number))) AS lcn,
    CAST(tuple(toString(number % 3), 1) AS Tuple(LowCardinality(String), UInt8)) AS tlc, [if(number % 2 = 0, NULL, number)] AS an
    FROM system.numbers LIMIT 30000 FORMAT Native`;
  let stream: Buffer;
  beforeAll(async () => {
    stream = await chBytes(QUERY, { allow_experimental_low_cardinality_type: 1, max_block_size: 4000 });
  });

  const feed = (bytes: Buffer, sizes: (i: number) => number): NativeValidator => {
    const v = new NativeValidator('test');
    for (let i = 0, k = 0; i < bytes.length; k++) {
      const n = Math.max(1, sizes(k));
      v.push(bytes.subarray(i, i + n));
      i += n;
    }
    v.end();
    return v;
  };

  it('follows every block of every type, whatever the chunking', () => {
    for (const sizes of [() => 1 << 20, () => 1, (k: number) => (k * 7919) % 3001, (k: number) => (k % 2 ? 3 : 65536)]) {
      const v = feed(stream, sizes);
      expect({ rows: v.rows, blocks: v.blocks }).toEqual({ rows: 30000, blocks: 8 });
    }
  });

  it('fails a stream cut off inside a block, wherever the cut', () => {
    for (let cut = 1; cut < stream.length; cut += Math.floor(stream.length / 97)) {
      const v = new NativeValidator('test');
      let err: unknown;
      try {
        v.push(stream.subarray(0, cut));
        v.end();
      } catch (e) {
        err = e;
      }
      // A cut exactly between two blocks is a shorter, valid stream; anywhere else it must fail.
      if (!err) expect(v.blocks).toBeGreaterThan(0);
      else expect((err as LifeboatError).type).toBe('StreamFailed');
    }
  });

  it('reports the exception 18.16 appends after the 200, with its code', async () => {
    const bytes = await chBytes('SELECT number, toString(number) AS s, throwIf(number = 300000) FROM system.numbers LIMIT 500000 FORMAT Native', { max_block_size: 10000 });
    expect(() => feed(bytes, () => 65536)).toThrow(/failed after 30 blocks \(\d+ bytes\): the server reported Code 395: Value passed to 'throwIf' function is non zero/);
  });

  it('finds an appended exception in the last bytes even when it landed inside a block', () => {
    const damaged = Buffer.concat([stream.subarray(0, 5000), Buffer.from("Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded, e.what() = DB::Exception\n")]);
    expect(() => feed(damaged, () => 1000)).toThrow(/incomplete or damaged .*the server reported Code 241: Memory limit \(for query\) exceeded$/);
  });
});

describe('server messages', () => {
  it('parses 18.16 and newer exception texts', () => {
    expect(parseException("Code: 60, e.displayText() = DB::Exception: Table x.y doesn't exist., e.what() = DB::Exception\n")).toEqual({ code: 60, text: "Table x.y doesn't exist." });
    expect(parseException('Code: 516. DB::Exception: lifeboat: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 23.8.1.1)\n')).toEqual({
      code: 516,
      text: 'lifeboat: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 23.8.1.1)',
    });
    expect(parseException('oops', '81').code).toBe(81);
    expect(findTrailingException(Buffer.from('\x00\x01binary Code: 396, e.displayText() = DB::Exception: Limit for result exceeded'))).toEqual({ code: 396, text: 'Limit for result exceeded' });
    expect(findTrailingException(Buffer.from('no code here'))).toBeUndefined();
    expect(redact("S3('u', 'AKIA1', 's3cr3t') failed", ['s3cr3t', 'AKIA1'])).toBe("S3('u', '[HIDDEN]', '[HIDDEN]') failed");
  });

  it('compares versions', () => {
    expect(versionAtLeast('18.16.1', [22, 8])).toBe(false);
    expect(versionAtLeast('22.8.2.11', [22, 8])).toBe(true);
    expect(versionAtLeast('22.7.9', [22, 8])).toBe(false);
    expect(versionAtLeast('24.3.1.2672', [22, 8])).toBe(true);
  });
});

describe('artifact names', () => {
  it('keeps readable names and hashes the rest into valid ones', () => {
    expect(fileName(['events', 'hits'], '.native')).toBe('events.hits.native');
    expect(fileName(['events', '.inner.daily'], '.native')).toMatch(/^events_inner_daily-[0-9a-f]{10}\.native$/);
    const long = fileName(['events', 'x'.repeat(80)], '.native');
    expect(long.length).toBeLessThanOrEqual(63);
    expect(fileName(['events', 'ü'], '.native')).not.toBe(fileName(['events', 'é'], '.native'));
  });
});

describe('settings', () => {
  const parse = (target: string) => {
    const c = parseConfig(`repository: { kind: local, path: /x }\nencryption: none\ntargets:\n  events-ch: ${target}\n`, '/etc/lifeboat/lifeboat.yaml');
    return parseClickhouseSettings(c.file, c.targets.get('events-ch')!);
  };

  it('has defaults and resolves secret references', () => {
    expect(parse('{ kind: clickhouse, user: lifeboat, password: { file: ch-pw }, databases: [events, logs] }')).toEqual({
      url: 'http://127.0.0.1:8123',
      user: 'lifeboat',
      password: { file: '/etc/lifeboat/ch-pw' },
      databases: ['events', 'logs'],
      drillDatabase: 'events',
      strategy: 'auto',
      nativeBackup: undefined,
    });
    expect(parse('{ kind: clickhouse, databases: [e], strategy: native, nativeBackupUrl: { url: "https://b.s3.amazonaws.com/ch", accessKeyId: { env: K }, secretAccessKey: { env: S }, incremental: true } }').nativeBackup).toEqual({
      url: 'https://b.s3.amazonaws.com/ch',
      accessKeyId: { env: 'K' },
      secretAccessKey: { env: 'S' },
      incremental: true,
      fullEvery: 7,
    });
  });

  it('refuses credentials where they would leak, and bad choices', () => {
    expect(() => parse('{ kind: clickhouse, databases: [e], url: "http://u:p@h:8123" }')).toThrow(/'targets.events-ch.url' must not contain credentials/);
    expect(() => parse('{ kind: clickhouse, databases: [e], url: "http://h:8123/?password=x" }')).toThrow(/must not have a query string/);
    expect(() => parse('{ kind: clickhouse, databases: [e], password: hunter2 }')).toThrow(/must reference the secret, not contain it/);
    expect(() => parse('{ kind: clickhouse, databases: [e], strategy: fast }')).toThrow(/'targets.events-ch.strategy' must be one of 'auto', 'native', 'logical', not 'fast'/);
    expect(() => parse('{ kind: clickhouse, databases: [e], strategy: native }')).toThrow(/nativeBackupUrl' is required with strategy 'native'/);
    expect(() => parse('{ kind: clickhouse, databases: [e], nativeBackupUrl: { url: "https://b/x", accessKeyId: { env: K } } }')).toThrow(/both accessKeyId and secretAccessKey, or neither/);
    expect(() => parse('{ kind: clickhouse, databases: ["../x"] }')).toThrow(/'targets.events-ch.databases\[0\]' must use 1-63 letters/);
  });
});
