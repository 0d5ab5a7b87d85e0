/** The format against the stock `age` tool (Debian's age package), both directions. */
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generateIdentity, parseIdentityFile, recipientOf } from '../../src/crypto';
import { CHUNK, open, run, seal, tempDir, tryOpen } from './helpers';

const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 1024 * 1024 + 123];

/** An identity file in age-keygen's layout. */
function identityFile(identity: string): string {
  return `# created: 2026-01-01T00:00:00Z\n# public key: ${recipientOf(identity)}\n${identity}\n`;
}

describe('interoperability with the age tool', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  const alice = generateIdentity();
  const bob = generateIdentity();
  let aliceFile: string;
  let bobFile: string;

  beforeAll(async () => {
    await run('age', ['--version']);
    tmp = await tempDir();
    aliceFile = await tmp.file('alice.key', identityFile(alice.identity));
    bobFile = await tmp.file('bob.key', identityFile(bob.identity));
    expect((await stat(aliceFile)).mode & 0o777).toBe(0o600);
  });
  afterAll(() => tmp.cleanup());

  test.each(SIZES)('lifeboat seals %i bytes, age -d opens them', async (n) => {
    const plaintext = randomBytes(n);
    const file = await seal(plaintext, [alice.recipient]);
    expect((await run('age', ['-d', '-i', aliceFile], file)).equals(plaintext)).toBe(true);
  });

  test.each(SIZES)('age -r seals %i bytes, lifeboat opens them', async (n) => {
    const plaintext = randomBytes(n);
    const file = await run('age', ['-r', alice.recipient], plaintext);
    expect((await open(file, [alice.identity])).equals(plaintext)).toBe(true);
    expect((await open(file, [alice.identity], 4093)).equals(plaintext)).toBe(true);
  });

  test('age -R with two recipients: lifeboat opens with either identity', async () => {
    const recipients = await tmp.file('recipients.txt', `# ops\n${alice.recipient}\n# escrow\n${bob.recipient}\n`);
    const plaintext = randomBytes(5 * CHUNK + 99);
    const file = await run('age', ['-R', recipients], plaintext);
    expect((await open(file, [alice.identity])).equals(plaintext)).toBe(true);
    expect((await open(file, [bob.identity])).equals(plaintext)).toBe(true);
  });

  test('lifeboat seals for two recipients: age -d opens with either identity file', async () => {
    const plaintext = randomBytes(2 * CHUNK + 1);
    const file = await seal(plaintext, [alice.recipient, bob.recipient]);
    expect((await run('age', ['-d', '-i', aliceFile], file)).equals(plaintext)).toBe(true);
    expect((await run('age', ['-d', '-i', bobFile], file)).equals(plaintext)).toBe(true);
  });

  test('an age-keygen identity file works in lifeboat, both directions', async () => {
    const keygen = join(tmp.dir, 'keygen.key');
    await run('age-keygen', ['-o', keygen]);
    const text = await readFile(keygen, 'utf8');
    const identities = parseIdentityFile(text);
    expect(identities).toHaveLength(1);
    const recipient = (await run('age-keygen', ['-y', keygen])).toString().trim();
    expect(recipientOf(identities[0]!)).toBe(recipient);

    const plaintext = randomBytes(CHUNK + 7);
    const byAge = await run('age', ['-r', recipient], plaintext);
    expect((await open(byAge, identities)).equals(plaintext)).toBe(true);
    const byLifeboat = await seal(plaintext, [recipient]);
    expect((await run('age', ['-d', '-i', keygen], byLifeboat)).equals(plaintext)).toBe(true);
  });

  test('age -d refuses a lifeboat file with a flipped payload bit, as lifeboat does', async () => {
    const file = await seal(randomBytes(1000), [alice.recipient]);
    file[file.length - 20]! ^= 1;
    await expect(run('age', ['-d', '-i', aliceFile], file)).rejects.toThrow(/exited 1/);
    expect((await tryOpen(file, [alice.identity])).error).toMatchObject({ type: 'AgeAuthFailed' });
  });

  test('an armored file from age -a is refused with a hint', async () => {
    const file = await run('age', ['-a', '-r', alice.recipient], Buffer.from('hi'));
    const r = await tryOpen(file, [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeNotEncrypted', message: expect.stringContaining('armored') });
  });
});
