import { LifeboatError } from '../../src/errors';
import { generateIdentity, parseIdentityFile, parseRecipient, recipientFingerprint, recipientOf } from '../../src/crypto';
import { run } from './helpers';

const KEYGEN_IDENTITY = 'AGE-SECRET-KEY-1ARTL2J6QRSUFDCNZE8X44YG88PC730RYEW3C5U4VRTSD2SGX0VTS07SJQK';
const KEYGEN_RECIPIENT = 'age14svh6z9unc58rum3k57s4aaujdajv6gmal0cl8n2687mgwf5tc7qke9ke4';

function caught(fn: () => unknown): LifeboatError {
  try {
    fn();
  } catch (err) {
    return err as LifeboatError;
  }
  throw new Error('expected a throw');
}

describe('keys', () => {
  test('generateIdentity makes age-keygen shaped keys whose recipient age-keygen -y agrees with', async () => {
    const { identity, recipient } = generateIdentity();
    expect(identity).toMatch(/^AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}$/);
    expect(recipient).toMatch(/^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$/);
    expect(recipientOf(identity)).toBe(recipient);
    const y = await run('age-keygen', ['-y'], Buffer.from(`${identity}\n`));
    expect(y.toString().trim()).toBe(recipient);
    expect(generateIdentity().identity).not.toBe(identity);
  });

  test('recipientOf agrees with age-keygen on an age-keygen identity', async () => {
    const file = (await run('age-keygen', [])).toString();
    const [identity] = parseIdentityFile(file);
    const publicLine = /# public key: (age1\S+)/.exec(file)![1];
    expect(recipientOf(identity!)).toBe(publicLine);
  });

  test('parseIdentityFile skips comments and blank lines, tolerates CRLF, keeps order', () => {
    const b = generateIdentity().identity;
    const text = `# created: 2026-01-01T00:00:00Z\n# public key: ${KEYGEN_RECIPIENT}\n${KEYGEN_IDENTITY}\r\n\n   \n# escrow\n${b}\n`;
    expect(parseIdentityFile(text)).toEqual([KEYGEN_IDENTITY, b]);
  });

  test('parseIdentityFile names the bad line and never prints a key', () => {
    const broken = KEYGEN_IDENTITY.slice(0, -1) + 'Q';
    const err = caught(() => parseIdentityFile(`# ok\n${KEYGEN_IDENTITY}\n${broken}\n`));
    expect(err.type).toBe('AgeBadKey');
    expect(err.message).toContain('line 3');
    expect(err.message).not.toContain(broken.slice(16, 30));
    expect(err.message).not.toContain(KEYGEN_IDENTITY.slice(16, 30));
  });

  test('parseIdentityFile rejects a recipient, a lowercase identity and an empty file', () => {
    expect(caught(() => parseIdentityFile(`${KEYGEN_RECIPIENT}\n`)).message).toMatch(/line 1 .*recipient \(public key/);
    const lower = caught(() => parseIdentityFile(KEYGEN_IDENTITY.toLowerCase()));
    expect(lower.message).toContain('uppercase');
    expect(lower.message).not.toContain(KEYGEN_IDENTITY.toLowerCase().slice(16, 30));
    expect(caught(() => parseIdentityFile('# nothing here\n\n')).type).toBe('AgeBadKey');
  });

  test('parseRecipient accepts a recipient and returns its 32-byte key', () => {
    const r = parseRecipient(KEYGEN_RECIPIENT);
    expect(r.recipient).toBe(KEYGEN_RECIPIENT);
    expect(r.publicKey).toHaveLength(32);
  });

  test.each([
    ['a typo', KEYGEN_RECIPIENT.replace('4svh6', '4svh7'), /checksum/],
    ['uppercase', KEYGEN_RECIPIENT.toUpperCase(), /lowercase/],
    ['an SSH key', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO', /SSH/],
    ['a plugin recipient', 'age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t', /plugin/],
    ['a truncated copy', KEYGEN_RECIPIENT.slice(0, 40), /./],
    ['empty', '', /empty/],
  ])('parseRecipient rejects %s with AgeBadKey', (_why, value, message) => {
    const err = caught(() => parseRecipient(value));
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err.type).toBe('AgeBadKey');
    expect(err.message).toMatch(message);
    if (value) expect(err.message).toContain(value.slice(0, 8));
  });

  test('parseRecipient given an identity says so without printing it', () => {
    const err = caught(() => parseRecipient(KEYGEN_IDENTITY));
    expect(err.type).toBe('AgeBadKey');
    expect(err.message).toMatch(/identity \(a secret key\)/);
    expect(err.message).not.toContain(KEYGEN_IDENTITY.slice(10));
  });

  test('recipientFingerprint is 16 stable hex digits per recipient and refuses identities', () => {
    const fp = recipientFingerprint(KEYGEN_RECIPIENT);
    expect(fp).toMatch(/^[0-9a-f]{16}$/);
    expect(recipientFingerprint(KEYGEN_RECIPIENT)).toBe(fp);
    expect(recipientFingerprint(generateIdentity().recipient)).not.toBe(fp);
    const err = caught(() => recipientFingerprint(KEYGEN_IDENTITY));
    expect(err.type).toBe('AgeBadKey');
    expect(err.message).not.toContain(KEYGEN_IDENTITY.slice(10));
  });
});
