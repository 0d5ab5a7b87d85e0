import { readFileSync } from 'node:fs';
import { configReference } from '../../src/config/reference';
import { kindSettings } from '../../src/stores';
import { parseConfig } from '../../src/config/load';

const base = `
repository: { kind: local, path: ./backups }
encryption: none
targets:
  app-pg: { kind: postgres, user: lifeboat, password: { file: ./pg-password }, databases: [app] }
`;

describe('config', () => {
  it('resolves defaults and relative secret files', () => {
    const c = parseConfig(base, '/etc/lifeboat/lifeboat.yaml');
    expect(c.temporal).toEqual({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'lifeboat', uiUrl: undefined, searchAttributes: true, heartbeatTimeoutSeconds: 30 });
    expect(c.repository).toEqual({ kind: 'local', path: '/etc/lifeboat/backups' });
    expect(c.encryption).toBeNull();
    expect(c.targets.get('app-pg')?.settings.password).toEqual({ file: './pg-password' });
  });

  it('refuses a secret written inline, saying how to reference it', () => {
    const text = base.replace('repository: { kind: local, path: ./backups }', 'repository: { kind: s3, bucket: b, accessKeyId: AKIA, secretAccessKey: x }');
    expect(() => parseConfig(text, 'l.yaml')).toThrow(/'repository.accessKeyId' must reference the secret, not contain it/);
    expect(() => parseConfig(base.replace('password: { file: ./pg-password }', 'password: hunter2'), 'l.yaml')).toThrow(/'targets.app-pg.password' must reference the secret/);
  });

  it('requires an explicit choice about encryption', () => {
    expect(() => parseConfig(base.replace('encryption: none\n', ''), 'l.yaml')).toThrow(/'encryption' is required/);
  });

  it('refuses unsafe target names', () => {
    expect(() => parseConfig(base.replace('app-pg:', '"../x":'), 'l.yaml')).toThrow(/'targets.\.\.\/x' is not a valid target name/);
  });

  it.each([
    ['temporal: { taskQeue: x }\n', /'temporal' has unknown setting 'taskQeue' \(did you mean 'taskQueue'\?\)/],
    ['retension: { daily: 3 }\n', /'\(top level\)' has unknown setting 'retension' \(did you mean 'retention'\?\)/],
    ['retention: { daily: -1 }\n', /'retention.daily' must be at least 0/],
    ['retention: { daily: "7" }\n', /'retention.daily' must be a number, not string "7"/],
  ])('names a typo or a bad value at the top level: %s', (extra, message) => {
    expect(() => parseConfig(`${extra}${base}`, 'l.yaml')).toThrow(message);
  });

  it.each([
    ['databases: [app]', 'databses: [app]', /'targets.app-pg' has unknown setting 'databses' \(did you mean 'databases'\?\)/],
    ['user: lifeboat', 'user: lifeboat, prot: 5433', /has unknown setting 'prot' \(did you mean 'port'\?\)/],
    ['kind: postgres', 'kind: postgers', /'targets.app-pg.kind' 'postgers' is not a kind this lifeboat knows \(did you mean 'postgres'\?\)/],
    ['user: lifeboat', 'user: lifeboat, port: 99999', /'targets.app-pg.port' must be at most 65535/],
    ['user: lifeboat', 'user: lifeboat, jobs: 0', /'targets.app-pg.jobs' must be at least 1/],
    ['user: lifeboat, ', '', /'targets.app-pg.user' is required/],
    ['databases: [app]', 'databases: []', /'targets.app-pg.databases' must list at least one database/],
    ['databases: [app]', 'databases: [app], hooks: { stopWriter: [] }', /'targets.app-pg.hooks' has unknown setting 'stopWriter' \(did you mean 'stopWriters'\?\)/],
    ['databases: [app]', 'databases: [app], hooks: { stopWriters: [{ command: "systemctl stop app" }] }', /'targets.app-pg.hooks.stopWriters\[0\].command' must be a list \(argv\), not a shell string/],
  ])('validates every kind\'s settings at load: %s -> %s', (from, to, message) => {
    expect(() => parseConfig(base.replace(from, to), 'l.yaml')).toThrow(message);
  });

  it('reports every problem at once', () => {
    const text = base.replace('databases: [app]', 'databses: [app], prot: 1').replace('encryption: none', 'encryption: none\nretention: { keepLast: x }');
    const err = (() => {
      try {
        parseConfig(text, 'l.yaml');
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(err).toMatch(/'retention.keepLast' must be a number/);
  });
});

describe('the schema is the documentation', () => {
  it('docs/config-reference.md is what `lifeboat config reference` prints (regenerate it with that command)', () => {
    expect(readFileSync(`${__dirname}/../../docs/config-reference.md`, 'utf8')).toBe(configReference(kindSettings()));
  });
});
