/** Damaged, truncated, reordered and foreign inputs: each fails with its own type, releasing nothing it cannot vouch for. */
import { randomBytes } from 'node:crypto';
import { generateIdentity, openStream, recipientFingerprint } from '../../src/crypto';
import { parseIdentity } from '../../src/crypto/keys';
import { parseHeader, unwrapFileKey } from '../../src/crypto/header';
import { CHUNK, ENC_CHUNK, payloadOffset, seal, tryOpen } from './helpers';

const alice = generateIdentity();
const bob = generateIdentity();
const plaintext = randomBytes(3 * CHUNK + 1000); // chunks 0..3, the last short
let file: Buffer;
let start: number;

beforeAll(async () => {
  file = await seal(plaintext, [alice.recipient]);
  start = payloadOffset(file);
});

const chunkAt = (k: number) => start + k * ENC_CHUNK;
const PIECES = [0, 1000, ENC_CHUNK, 4099];

function expectOnlyAuthenticatedPrefix(emitted: Buffer, firstBadChunk: number): void {
  expect(emitted.length).toBeLessThanOrEqual(firstBadChunk * CHUNK);
  expect(emitted.equals(plaintext.subarray(0, emitted.length))).toBe(true);
}

describe('identities', () => {
  test('a wrong identity gives AgeNoMatchingIdentity naming fingerprints, never keys', async () => {
    const r = await tryOpen(file, [bob.identity]);
    expect(r.error).toMatchObject({ type: 'AgeNoMatchingIdentity' });
    expect(r.error!.message).toContain('no identity matches any recipient of this file');
    expect(r.error!.message).toContain(recipientFingerprint(bob.recipient));
    expect(r.error!.message).not.toContain(bob.identity.slice(16, 30));
    expect(r.emitted.length).toBe(0);
  });

  test("with the manifest's fingerprints, the message says whom it was sealed for", async () => {
    const fp = recipientFingerprint(alice.recipient);
    const opener = openStream([bob.identity], { sealedFor: [fp] });
    const err = await new Promise<Error>((resolve) => {
      opener.on('error', resolve);
      opener.resume();
      opener.end(file);
    });
    expect(err).toMatchObject({ type: 'AgeNoMatchingIdentity', message: expect.stringContaining(`sealed for recipients with fingerprints ${fp}`) });
  });

  test('a passphrase (scrypt) file says lifeboat does not read it', async () => {
    const text = file.subarray(0, start - 16).toString('latin1');
    const scrypt = text.replace(/-> X25519 \S+\n\S+\n/, `-> scrypt ${'A'.repeat(22)} 18\n${'A'.repeat(43)}\n`);
    const r = await tryOpen(Buffer.concat([Buffer.from(scrypt, 'latin1'), file.subarray(start - 16)]), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeNoMatchingIdentity', message: expect.stringContaining('scrypt') });
  });
});

describe('not age at all', () => {
  test('plain input gives AgeNotEncrypted with the expected message', async () => {
    const r = await tryOpen(Buffer.from('PGDMP\x01\x0e\x00 a pg_dump archive'), [alice.identity]);
    expect(r.error).toMatchObject({
      type: 'AgeNotEncrypted',
      message: "input is not an age file (it does not start with 'age-encryption.org/v1'); was it encrypted?",
    });
  });

  test('empty input gives AgeNotEncrypted', async () => {
    expect((await tryOpen(Buffer.alloc(0), [alice.identity])).error).toMatchObject({ type: 'AgeNotEncrypted' });
  });

  test('plain input is refused at its first differing byte, even one byte at a time', async () => {
    expect((await tryOpen(Buffer.from('age-encryption.com/v1\n'), [alice.identity], 1)).error).toMatchObject({ type: 'AgeNotEncrypted' });
  });

  test('another age version is a bad header, not plain input', async () => {
    const r = await tryOpen(Buffer.from('age-encryption.org/v2\n-> X\n\n--- x\n'), [alice.identity], 1);
    expect(r.error).toMatchObject({ type: 'AgeBadHeader', message: expect.stringContaining("first line is not 'age-encryption.org/v1'") });
  });
});

describe('header', () => {
  test.each([5, 30, 60, 100])('cut %i bytes in gives AgeBadHeader', async (at) => {
    const r = await tryOpen(file.subarray(0, at), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeBadHeader' });
    expect(r.error!.message).toMatch(/truncated/);
  });

  test('cut just before the newline of the MAC line gives AgeBadHeader', async () => {
    expect((await tryOpen(file.subarray(0, start - 17), [alice.identity])).error).toMatchObject({ type: 'AgeBadHeader' });
  });

  test('a modified MAC gives AgeBadHeader', async () => {
    const bad = Buffer.from(file);
    const macChar = start - 16 - 2;
    bad[macChar] = bad[macChar] === 0x41 ? 0x42 : 0x41;
    expect((await tryOpen(bad, [alice.identity])).error).toMatchObject({ type: 'AgeBadHeader', message: expect.stringContaining('MAC') });
  });

  test('an extra stanza (covered by the MAC) gives AgeBadHeader', async () => {
    const text = file.subarray(0, start - 16).toString('latin1').replace('\n---', '\n-> grease x y\nAAAA\n---');
    const r = await tryOpen(Buffer.concat([Buffer.from(text, 'latin1'), file.subarray(start - 16)]), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeBadHeader', message: expect.stringContaining('MAC') });
  });

  test('a modified wrapped file key no longer matches the identity', async () => {
    const bad = Buffer.from(file);
    const body = bad.indexOf('\n', bad.indexOf('-> X25519')) + 3;
    bad[body] = bad[body] === 0x41 ? 0x42 : 0x41;
    expect((await tryOpen(bad, [alice.identity])).error).toMatchObject({ type: 'AgeNoMatchingIdentity' });
  });

  test.each([
    ['CRLF line ends', (h: string) => h.replace(/\n/g, '\r\n')],
    ['padded base64 in the MAC', (h: string) => h.replace(/(--- \S+)\n$/, '$1=\n')],
    ['two spaces after ---', (h: string) => h.replace('--- ', '---  ')],
    ['no recipient stanza', (h: string) => h.replace(/-> X25519 \S+\n\S+\n/, '')],
    ['an X25519 stanza with two arguments', (h: string) => h.replace(/(-> X25519 \S+)/, '$1 extra')],
    ['a stanza body line over 64 columns', (h: string) => h.replace(/(-> X25519 \S+\n)(\S+)/, `$1$2${'A'.repeat(40)}`)],
  ])('%s gives AgeBadHeader', async (_why, edit) => {
    const header = edit(file.subarray(0, start - 16).toString('latin1'));
    const r = await tryOpen(Buffer.concat([Buffer.from(header, 'latin1'), file.subarray(start - 16)]), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeBadHeader' });
  });

  test('a header without a MAC line is refused once it passes 1 MiB', async () => {
    const endless = Buffer.concat([Buffer.from('age-encryption.org/v1\n'), Buffer.alloc(2 * 1024 * 1024, 0x41)]);
    expect((await tryOpen(endless, [alice.identity], 65536)).error).toMatchObject({ type: 'AgeBadHeader', message: expect.stringContaining('longer than') });
  });

  test('unknown stanzas are parsed and skipped, whatever their arguments and body', () => {
    const text = file.subarray(0, start - 16).toString('latin1').replace('age-encryption.org/v1\n', `age-encryption.org/v1\n-> 5@-grease ( !\n${'A'.repeat(64)}\n\n`);
    const parsed = parseHeader(Buffer.from(text, 'latin1'));
    expect(parsed.stanzas.map((s) => [s.type, s.args.length, s.body.length])).toEqual([
      ['5@-grease', 2, 48],
      ['X25519', 1, 32],
    ]);
  });

  test('the file key unwraps only for a matching identity', () => {
    const parsed = parseHeader(file.subarray(0, start - 16));
    expect(unwrapFileKey(parsed.stanzas, [parseIdentity(alice.identity)])).toHaveLength(16);
    expect(unwrapFileKey(parsed.stanzas, [parseIdentity(bob.identity)])).toBeNull();
  });
});

describe('payload', () => {
  test.each(PIECES)('a flipped bit in chunk k releases nothing of chunk k or later (pieces of %i)', async (piece) => {
    for (const k of [0, 1, 2, 3]) {
      for (const where of [0, 777, 'tag'] as const) {
        const bad = Buffer.from(file);
        const end = k === 3 ? file.length : chunkAt(k + 1);
        const at = where === 'tag' ? end - 5 : chunkAt(k) + where;
        bad[at]! ^= 0x10;
        const r = await tryOpen(bad, [alice.identity], piece);
        expect(r.error).toMatchObject({ type: 'AgeAuthFailed', message: expect.stringContaining(`chunk ${k} `) });
        expectOnlyAuthenticatedPrefix(r.emitted, k);
      }
    }
  });

  test('a flipped bit in the payload nonce fails the first chunk', async () => {
    const bad = Buffer.from(file);
    bad[start - 3]! ^= 1;
    const r = await tryOpen(bad, [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeAuthFailed', message: expect.stringContaining('chunk 0 ') });
    expect(r.emitted.length).toBe(0);
  });

  test.each([
    [0, 1],
    [1, 2],
  ])('swapped chunks %i and %i give AgeAuthFailed at the first of them', async (a, b) => {
    const parts = [0, 1, 2].map((k) => file.subarray(chunkAt(k), chunkAt(k + 1)));
    [parts[a], parts[b]] = [parts[b]!, parts[a]!];
    const swapped = Buffer.concat([file.subarray(0, start), ...parts, file.subarray(chunkAt(3))]);
    for (const piece of PIECES) {
      const r = await tryOpen(swapped, [alice.identity], piece);
      expect(r.error).toMatchObject({ type: 'AgeAuthFailed', message: expect.stringContaining(`chunk ${a} `) });
      expectOnlyAuthenticatedPrefix(r.emitted, a);
    }
  });

  test('a dropped middle chunk gives AgeAuthFailed', async () => {
    const dropped = Buffer.concat([file.subarray(0, chunkAt(1)), file.subarray(chunkAt(2))]);
    const r = await tryOpen(dropped, [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeAuthFailed', message: expect.stringContaining('chunk 1 ') });
    expectOnlyAuthenticatedPrefix(r.emitted, 1);
  });

  test.each(PIECES)('the final chunk cut off gives AgeTruncated and releases at most the chunks before the last held one (pieces of %i)', async (piece) => {
    const r = await tryOpen(file.subarray(0, chunkAt(3)), [alice.identity], piece);
    expect(r.error).toMatchObject({ type: 'AgeTruncated', message: expect.stringContaining('chunk 2') });
    expectOnlyAuthenticatedPrefix(r.emitted, 2);
  });

  test('a full-size final chunk cut off gives AgeTruncated', async () => {
    const exact = await seal(randomBytes(3 * CHUNK), [alice.recipient]);
    const r = await tryOpen(exact.subarray(0, exact.length - ENC_CHUNK), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeTruncated' });
  });

  test.each([
    ['inside the payload nonce', () => start - 5],
    ['right after the nonce', () => start],
    ['a few bytes into a chunk', () => chunkAt(1) + 9],
    ['16 bytes into a chunk', () => chunkAt(1) + 16],
  ])('cut %s gives AgeTruncated', async (_why, at) => {
    expect((await tryOpen(file.subarray(0, at()), [alice.identity])).error).toMatchObject({ type: 'AgeTruncated' });
  });

  test('cut mid final chunk fails authentication, mentioning truncation', async () => {
    const r = await tryOpen(file.subarray(0, file.length - 100), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeAuthFailed', message: expect.stringMatching(/chunk 3 .*truncated/) });
    expectOnlyAuthenticatedPrefix(r.emitted, 3);
  });

  test('data after a full-size final chunk gives AgeAuthFailed naming trailing data', async () => {
    const exact = await seal(randomBytes(2 * CHUNK), [alice.recipient]);
    const r = await tryOpen(Buffer.concat([exact, Buffer.from('x')]), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeAuthFailed', message: expect.stringContaining('data after its final chunk') });
  });

  test('two age files joined give AgeAuthFailed', async () => {
    const r = await tryOpen(Buffer.concat([file, file]), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeAuthFailed' });
    expectOnlyAuthenticatedPrefix(r.emitted, 3);
  });
});
