import { Writer } from 'protobufjs/minimal';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load';
import { packOrder } from '../../src/stores/influxdb/archive';
import { lineTag, quoteIdent } from '../../src/stores/influxdb/influxql';
import { readPortableMeta } from '../../src/stores/influxdb/meta';
import { parseInfluxdbSettings } from '../../src/stores/influxdb/settings';
import { major, parseVersion, versionAtLeast } from '../../src/stores/influxdb/tool';

/** The influxdb kind's pure parts: settings, versions, quoting, the meta file. No server. */

function settings(target: Record<string, unknown>) {
  const text = stringify({ repository: { kind: 'local', path: '/tmp/x' }, encryption: 'none', targets: { m: { kind: 'influxdb', ...target } } });
  const config = parseConfig(text, '/etc/lifeboat/lifeboat.yaml');
  return parseInfluxdbSettings(config.file, config.targets.get('m')!);
}

const fail = (target: Record<string, unknown>) => {
  try {
    settings(target);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a config error');
};

test('defaults: local server, RPC on the url host at 8088, the first database for the drill, influxd on PATH, the OS temp folder', () => {
  const s = settings({ databases: ['metrics', 'telegraf'] });
  expect(s).toMatchObject({ url: 'http://127.0.0.1:8086', rpcAddress: '127.0.0.1:8088', drillDatabase: 'metrics', influxd: 'influxd' });
  expect(settings({ url: 'https://influx.internal:8086/', databases: ['a'] }).rpcAddress).toBe('influx.internal:8088');
  expect(settings({ url: 'http://[::1]:8086', databases: ['a'] }).rpcAddress).toBe('[::1]:8088');
  expect(settings({ databases: ['a'], spoolDir: 'spool', influxd: 'bin/influxd' })).toMatchObject({ spoolDir: '/etc/lifeboat/spool', influxd: '/etc/lifeboat/bin/influxd' });
});

test('refused settings name the field and the fix', () => {
  expect(fail({ url: 'http://admin:pw@influx:8086', databases: ['a'] })).toMatch(/'targets\.m\.url' must not contain credentials/);
  expect(fail({ url: 'http://influx:8086/?u=admin&p=pw', databases: ['a'] })).toMatch(/must not have a query string/);
  expect(fail({ url: 'http://influx:8086/api', databases: ['a'] })).toMatch(/without a path/);
  expect(fail({ databases: ['a'], user: 'lifeboat' })).toMatch(/needs both user and password, or neither/);
  expect(fail({ databases: ['a'], password: 'inline' })).toMatch(/must reference the secret, not contain it/);
  expect(fail({ databases: ['a'], drillDatabase: 'b' })).toMatch(/'targets\.m\.drillDatabase' is 'b', which is not one of its databases/);
  expect(fail({ databases: ['a'], rpcAddress: '8088' })).toMatch(/must be host:port/);
  expect(fail({ databases: ['_internal'] })).toMatch(/must use 1-63 letters/);
  expect(fail({ databases: [] })).toMatch(/must list at least one database/);
  expect(fail({ databases: ['a'], rpcPort: 8088 })).toMatch(/unknown setting 'rpcPort'/);
});

test('versions: 1.5 and newer 1.x can do portable backups; 2.x is major 2', () => {
  expect(parseVersion('InfluxDB v1.6.7~rc0 (git: unknown unknown)')).toBe('1.6.7~rc0');
  expect(parseVersion('v2.7.1')).toBe('2.7.1');
  expect(parseVersion('1.8.10')).toBe('1.8.10');
  expect(versionAtLeast('1.6.7~rc0', [1, 5])).toBe(true);
  expect(versionAtLeast('1.5.0', [1, 5])).toBe(true);
  expect(versionAtLeast('1.4.3', [1, 5])).toBe(false);
  expect(major('2.7.1')).toBe(2);
});

test('quoting: identifiers for InfluxQL, tag values for the line protocol', () => {
  expect(quoteIdent('metrics')).toBe('"metrics"');
  expect(quoteIdent('we"ird\\name')).toBe('"we\\"ird\\\\name"');
  expect(lineTag('a b,c=d')).toBe('a\\ b\\,c\\=d');
  expect(() => lineTag('a\\b')).toThrow(/cannot be written/);
  expect(() => lineTag('a\nb')).toThrow(/cannot be written/);
});

test('the archive order: manifest, meta, shards', () => {
  expect(packOrder(['x.s2.tar.gz', 'x.meta', 'x.s10.tar.gz', 'x.manifest'])).toEqual(['x.manifest', 'x.meta', 'x.s10.tar.gz', 'x.s2.tar.gz']);
});

test('the meta file: databases, policies, continuous queries and users are read; anything else is refused', () => {
  const msg = (fields: (w: Writer) => void) => {
    const w = Writer.create();
    fields(w);
    return w.finish();
  };
  const rp = (name: string) => msg((w) => w.uint32((1 << 3) | 2).string(name).uint32((2 << 3) | 0).int64(0));
  const cq = msg((w) => w.uint32((1 << 3) | 2).string('cq1').uint32((2 << 3) | 2).string('CREATE CONTINUOUS QUERY cq1 ON m BEGIN SELECT 1 END'));
  const db = msg((w) => w.uint32((1 << 3) | 2).string('m').uint32((2 << 3) | 2).string('autogen').uint32((3 << 3) | 2).bytes(rp('autogen')).uint32((3 << 3) | 2).bytes(rp('short')).uint32((4 << 3) | 2).bytes(cq));
  const data = msg((w) => w.uint32((1 << 3) | 0).uint64(1).uint32((5 << 3) | 2).bytes(db).uint32((6 << 3) | 2).bytes(msg((u) => u.uint32(10).string('admin'))));
  const file = msg((w) => w.uint32((1 << 3) | 2).bytes(data).uint32((2 << 3) | 0).uint64(0));
  expect(readPortableMeta(file)).toEqual({
    dataBytes: data.length,
    databases: [{ name: 'm', defaultRetentionPolicy: 'autogen', retentionPolicies: ['autogen', 'short'], continuousQueries: [{ name: 'cq1', query: 'CREATE CONTINUOUS QUERY cq1 ON m BEGIN SELECT 1 END' }] }],
    users: 1,
  });
  expect(() => readPortableMeta(Buffer.from('not a protobuf at all'))).toThrow();
  expect(() => readPortableMeta(msg((w) => w.uint32((2 << 3) | 0).uint64(0)))).toThrow(/no meta store/);
  expect(() => readPortableMeta(msg((w) => w.uint32((1 << 3) | 2).bytes(msg((d) => d.uint32((5 << 3) | 2).bytes(db)))))).toThrow(/no Term/);
});
