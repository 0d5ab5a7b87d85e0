import { artifactKey, manifestKey, sidecarText } from '../../src/domain/layout';
import { MANIFEST_SCHEMA, parseManifest, type Manifest } from '../../src/domain/manifest';
import { checkMarkers, describeMarkers, markersOk } from '../../src/domain/markers';
import { backupIdTime, makeBackupId, validateBackupId, validateName } from '../../src/domain/names';

describe('names and ids', () => {
  it('makes sortable backup ids from a time and random hex', () => {
    const id = makeBackupId(new Date('2026-11-23T02:00:00.123Z'), '7F3A99');
    expect(id).toBe('20261123T020000Z-7f3a');
    expect(validateBackupId(id)).toBe(id);
    expect(backupIdTime(id).toISOString()).toBe('2026-11-23T02:00:00.000Z');
  });

  it.each(['..', 'a/b', '../etc', 'a..b', '', 'x\n', ' app', 'a b', 'é', 'a'.repeat(64)])('refuses the name %j', (bad) => {
    expect(() => validateName('target', bad)).toThrow(/target .* is not a valid name/);
  });

  it('refuses keys built from unsafe names', () => {
    expect(() => artifactKey('app-pg', '20261123T020000Z-7f3a', '../x')).toThrow(/artifact file/);
    expect(() => manifestKey('app-pg', '2026/../x')).toThrow(/backup id .* is not a lifeboat backup id/);
    expect(artifactKey('app-pg', '20261123T020000Z-7f3a', 'app.dump.age')).toBe('app-pg/20261123T020000Z-7f3a/app.dump.age');
  });

  it('writes sidecars in sha256sum format', () => {
    expect(sidecarText('ab'.repeat(32), 'app.dump.age')).toBe(`${'ab'.repeat(32)}  app.dump.age\n`);
  });
});

describe('manifest', () => {
  const good: Manifest = {
    schema: MANIFEST_SCHEMA,
    backupId: '20261123T020000Z-7f3a',
    target: 'app-pg',
    kind: 'postgres',
    server: { version: '15.18' },
    tools: { pg_dump: '15.18' },
    lifeboatVersion: '0.1.0',
    startedAt: '2026-11-23T02:00:00Z',
    finishedAt: '2026-11-23T02:00:02Z',
    encryption: { format: 'age', recipients: ['0123456789abcdef'] },
    artifacts: [{ file: 'app.dump.age', item: 'database:app', name: 'app', format: 'pg_dump-custom', encryption: 'age', bytes: 10, sha256: 'a'.repeat(64), seconds: 1 }],
  };

  it('round-trips', () => {
    expect(parseManifest(JSON.stringify(good), 'm')).toEqual(good);
  });

  it('refuses an unknown schema version, naming it', () => {
    expect(() => parseManifest(JSON.stringify({ ...good, schema: 2 }), 's3://b/m.json')).toThrow(
      "manifest s3://b/m.json is not valid: schema version 2 is not one this lifeboat reads (it reads 1); upgrade lifeboat to read it",
    );
  });

  it('refuses a bad artifact hash and unsafe file names', () => {
    const art = good.artifacts[0]!;
    expect(() => parseManifest(JSON.stringify({ ...good, artifacts: [{ ...art, sha256: 'xyz' }] }), 'm')).toThrow(/no valid sha256/);
    expect(() => parseManifest(JSON.stringify({ ...good, artifacts: [{ ...art, file: '../../etc/passwd' }] }), 'm')).toThrow(/not a valid name/);
    expect(() => parseManifest('{', 'm')).toThrow(/not JSON/);
    // A block list: absent in older backups; when present, a sane block size and a SHA-256.
    const blocks = { size: 4 << 20, sha256: 'c'.repeat(64) };
    expect(parseManifest(JSON.stringify({ ...good, artifacts: [{ ...art, blocks }] }), 'm').artifacts[0]!.blocks).toEqual(blocks);
    for (const bad of [null, 'x', { ...blocks, size: 0 }, { ...blocks, size: 1 << 30 }, { ...blocks, sha256: 'xyz' }]) {
      expect(() => parseManifest(JSON.stringify({ ...good, artifacts: [{ ...art, blocks: bad }] }), 'm')).toThrow(/has an invalid block list/);
    }
  });
});

describe('markers', () => {
  it('passes only when every marker came back once', () => {
    expect(markersOk(checkMarkers(3, [1, 2, 3]))).toBe(true);
    const r = checkMarkers(5, [1, 3, 3, 9]);
    expect(r).toEqual({ expected: 5, found: 2, missing: [2, 4, 5], unexpected: 2 });
    expect(markersOk(r)).toBe(false);
    expect(describeMarkers('app-pg', r)).toBe('app-pg: 2/5 markers came back; missing 2, 4, 5; 2 unexpected rows');
  });
});
