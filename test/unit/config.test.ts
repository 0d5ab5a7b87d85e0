import { parseConfig } from '../../src/config';
import { parsePostgresSettings } from '../../src/stores/postgres/settings';

const base = `
repository: { kind: local, path: ./backups }
encryption: none
targets:
  app-pg: { kind: postgres, user: lifeboat, password: { file: ./pg-password }, databases: [app] }
`;

describe('config', () => {
  it('resolves defaults and relative secret files', () => {
    const c = parseConfig(base, '/etc/lifeboat/lifeboat.yaml');
    expect(c.temporal).toEqual({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'lifeboat', uiUrl: undefined, searchAttributes: true });
    expect(c.repository).toEqual({ kind: 'local', path: '/etc/lifeboat/backups' });
    expect(c.encryption).toBeNull();
    expect(c.targets.get('app-pg')?.settings.password).toEqual({ file: './pg-password' });
  });

  it('refuses a secret written inline, saying how to reference it', () => {
    const text = base.replace('repository: { kind: local, path: ./backups }', 'repository: { kind: s3, bucket: b, accessKeyId: AKIA, secretAccessKey: x }');
    expect(() => parseConfig(text, 'l.yaml')).toThrow(/'repository.accessKeyId' must reference the secret, not contain it/);
    const pg = parseConfig(base.replace('password: { file: ./pg-password }', 'password: hunter2'), 'l.yaml');
    expect(() => parsePostgresSettings('l.yaml', pg.targets.get('app-pg')!)).toThrow(/'targets.app-pg.password' must reference the secret/);
  });

  it('requires an explicit choice about encryption', () => {
    expect(() => parseConfig(base.replace('encryption: none\n', ''), 'l.yaml')).toThrow(/'encryption' is required/);
  });

  it('refuses unsafe target names', () => {
    expect(() => parseConfig(base.replace('app-pg:', '"../x":'), 'l.yaml')).toThrow(/target "..\/x" is not a valid name/);
  });
});
