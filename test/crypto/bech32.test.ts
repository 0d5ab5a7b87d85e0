import { bech32Decode, bech32Encode } from '../../src/crypto/bech32';
import { recipientOf } from '../../src/crypto';

// A test-only pair made by `age-keygen` (age 1.1.1); it protects nothing.
const KEYGEN_IDENTITY = 'AGE-SECRET-KEY-1ARTL2J6QRSUFDCNZE8X44YG88PC730RYEW3C5U4VRTSD2SGX0VTS07SJQK';
const KEYGEN_RECIPIENT = 'age14svh6z9unc58rum3k57s4aaujdajv6gmal0cl8n2687mgwf5tc7qke9ke4';

describe('bech32', () => {
  test('decodes and re-encodes an age-keygen identity and recipient', () => {
    const id = bech32Decode(KEYGEN_IDENTITY);
    expect(id.hrp).toBe('AGE-SECRET-KEY-');
    expect(id.data).toHaveLength(32);
    expect(bech32Encode('age-secret-key-', id.data).toUpperCase()).toBe(KEYGEN_IDENTITY);

    const r = bech32Decode(KEYGEN_RECIPIENT);
    expect(r.hrp).toBe('age');
    expect(r.data).toHaveLength(32);
    expect(bech32Encode('age', r.data)).toBe(KEYGEN_RECIPIENT);
  });

  test('the age-keygen identity derives its age-keygen recipient', () => {
    expect(recipientOf(KEYGEN_IDENTITY)).toBe(KEYGEN_RECIPIENT);
  });

  test.each([
    'A12UEL5L',
    'a12uel5l',
    'an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs',
    'abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw',
    'split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w',
    '?1ezyfcl',
  ])('accepts BIP 173 valid string %s', (s) => {
    const { hrp, data } = bech32Decode(s);
    expect(bech32Encode(hrp, data)).toBe(s.toLowerCase());
  });

  test.each([
    ['mixed case', 'a12UEL5L'],
    ['empty human-readable part', '1nwldj5'],
    ['no separator', 'pzry9x0s0muk'],
    ['invalid data character', 'x1b4n0q5v'],
    ['checksum too short', 'li1dgmt3'],
    ['bad checksum', 'A1G7SGD8'],
    ['bech32m, not bech32', 'a1lqfn3a'],
    ['one typo in an age recipient', KEYGEN_RECIPIENT.replace('4svh6', '4svh7')],
  ])('rejects %s', (_why, s) => {
    expect(() => bech32Decode(s)).toThrow();
  });

  test('round-trips arbitrary lengths', () => {
    for (let n = 0; n < 70; n++) {
      const data = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      const s = bech32Encode('test', data);
      expect(bech32Decode(s).data.equals(data)).toBe(true);
    }
  });
});
