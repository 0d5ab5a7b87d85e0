import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { generateIdentity, openStream, sealStream, verifyStream } from '../../src/crypto';
import { CHUNK, ENC_CHUNK, open, payloadOffset, seal, tryOpen } from './helpers';

const alice = generateIdentity();
const bob = generateIdentity();

const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 1024 * 1024 + 123];

describe('seal/open round trip', () => {
  test.each(SIZES)('%i bytes, fed whole, in 1000-byte and in 7919-byte pieces', async (n) => {
    const plaintext = randomBytes(n);
    const file = await seal(plaintext, [alice.recipient]);
    for (const piece of [0, 1000, 7919]) {
      expect((await open(file, [alice.identity], piece)).equals(plaintext)).toBe(true);
    }
    // Sealing in small pieces gives the same layout as sealing in one go.
    const again = await seal(plaintext, [alice.recipient], 4096);
    expect((await open(again, [alice.identity], ENC_CHUNK)).equals(plaintext)).toBe(true);
    expect(again.length).toBe(file.length);
  });

  test.each(SIZES)('%i bytes: payload is nonce + ceil(n/64KiB) chunks (at least one), last chunk non-empty unless n = 0', async (n) => {
    const file = await seal(randomBytes(n), [alice.recipient]);
    const chunks = Math.max(1, Math.ceil(n / CHUNK));
    expect(file.length - payloadOffset(file)).toBe(n + 16 * chunks);
  });

  test('a small file fed one byte at a time, header included', async () => {
    const plaintext = randomBytes(300);
    const file = await seal(plaintext, [alice.recipient, bob.recipient], 1);
    expect((await open(file, [bob.identity], 1)).equals(plaintext)).toBe(true);
  });

  test('each of two recipients can open; an identity list opens with whichever matches', async () => {
    const plaintext = randomBytes(2 * CHUNK + 5);
    const file = await seal(plaintext, [alice.recipient, bob.recipient]);
    expect((await open(file, [alice.identity])).equals(plaintext)).toBe(true);
    expect((await open(file, [bob.identity])).equals(plaintext)).toBe(true);
    const stranger = generateIdentity();
    expect((await open(file, [stranger.identity, bob.identity])).equals(plaintext)).toBe(true);
  });

  test('two seals of the same plaintext differ (fresh file key, ephemeral share, nonce)', async () => {
    const plaintext = Buffer.alloc(1000);
    expect((await seal(plaintext, [alice.recipient])).equals(await seal(plaintext, [alice.recipient]))).toBe(false);
  });

  test('openStream holds a full chunk back until it knows whether it is the last', async () => {
    const plaintext = randomBytes(2 * CHUNK);
    const file = await seal(plaintext, [alice.recipient]);
    const start = payloadOffset(file);
    const opener = openStream([alice.identity]);
    const out: Buffer[] = [];
    opener.on('data', (d: Buffer) => out.push(d));
    const tick = () => new Promise((r) => setImmediate(r));

    opener.write(file.subarray(0, start + ENC_CHUNK));
    await tick();
    expect(Buffer.concat(out).length).toBe(0);
    opener.write(file.subarray(start + ENC_CHUNK, start + ENC_CHUNK + 1));
    await tick();
    expect(Buffer.concat(out).equals(plaintext.subarray(0, CHUNK))).toBe(true);
    opener.end(file.subarray(start + ENC_CHUNK + 1));
    await once(opener, 'end');
    expect(Buffer.concat(out).equals(plaintext)).toBe(true);
  });

  test('verifyStream authenticates to the last chunk and keeps nothing', async () => {
    const plaintext = randomBytes(3 * CHUNK + 17);
    const file = await seal(plaintext, [alice.recipient]);
    const v = verifyStream([alice.identity]);
    await pipeline(Readable.from([file]), v);
    expect(v.chunks).toBe(4);
    expect(v.plaintextBytes).toBe(plaintext.length);

    const cut = file.subarray(0, file.length - (17 + 16));
    await expect(pipeline(Readable.from([cut]), verifyStream([alice.identity]))).rejects.toMatchObject({ type: 'AgeTruncated' });
  });

  test('sealStream and openStream validate keys before any byte flows', () => {
    expect(() => sealStream([])).toThrow(expect.objectContaining({ type: 'AgeBadKey' }));
    expect(() => sealStream([alice.recipient, 'age1nope'])).toThrow(expect.objectContaining({ type: 'AgeBadKey', message: expect.stringContaining('age1nope') }));
    expect(() => openStream([])).toThrow(expect.objectContaining({ type: 'AgeBadKey' }));
    expect(() => openStream([alice.recipient])).toThrow(expect.objectContaining({ type: 'AgeBadKey', message: expect.stringContaining('identity #1') }));
  });

  test('an error from openStream is a LifeboatError with a type, and the stream emits nothing after it', async () => {
    const r = await tryOpen(Buffer.from('hello'), [alice.identity]);
    expect(r.error).toMatchObject({ type: 'AgeNotEncrypted', permanent: true });
    expect(r.emitted.length).toBe(0);
  });
});
