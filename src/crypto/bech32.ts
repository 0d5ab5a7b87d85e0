/**
 * Bech32 (BIP 173, not bech32m), as age uses it for keys: no 90-character
 * limit, a checksum over the lowercased human-readable part, and no mixed case.
 */

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i]!;
  }
  return chk >>> 0;
}

function hrpExpand(hrp: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) >>> 5);
  out.push(0);
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) & 31);
  return out;
}

/** Regroups bits; `pad` is true for 8->5 (encode) and false for 5->8, where leftover bits must be zero padding. */
function convertBits(data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] | null {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const maxv = (1 << to) - 1;
  for (let i = 0; i < data.length; i++) {
    acc = (acc << from) | data[i]!;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & maxv);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv);
  } else if (bits >= from || ((acc << (to - bits)) & maxv) !== 0) {
    return null;
  }
  return out;
}

/** Encodes bytes under a lowercase human-readable part; callers uppercase the result if they want (age identities). */
export function bech32Encode(hrp: string, data: Uint8Array): string {
  const lower = hrp.toLowerCase();
  const words = convertBits(data, 8, 5, true)!;
  const mod = polymod([...hrpExpand(lower), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  let out = `${lower}1`;
  for (const w of words) out += CHARSET[w];
  for (let i = 0; i < 6; i++) out += CHARSET[(mod >>> (5 * (5 - i))) & 31];
  return out;
}

export interface Bech32Decoded {
  /** The human-readable part in the case it was written in. */
  hrp: string;
  data: Buffer;
}

/** Decodes a Bech32 string; throws a plain Error describing the defect (callers wrap it without echoing secrets). */
export function bech32Decode(s: string): Bech32Decoded {
  if (s.toLowerCase() !== s && s.toUpperCase() !== s) throw new Error('it mixes upper and lower case');
  const pos = s.lastIndexOf('1');
  if (pos < 1 || pos + 7 > s.length) throw new Error("it has no '1' separator followed by a checksum");
  const hrp = s.slice(0, pos);
  for (let i = 0; i < hrp.length; i++) {
    const c = hrp.charCodeAt(i);
    if (c < 33 || c > 126) throw new Error('its prefix has a character outside printable ASCII');
  }
  const lower = s.toLowerCase();
  const words: number[] = [];
  for (let i = pos + 1; i < lower.length; i++) {
    const d = CHARSET.indexOf(lower[i]!);
    if (d < 0) throw new Error(`it has a character that is not Bech32 at position ${i + 1}`);
    words.push(d);
  }
  if (polymod([...hrpExpand(hrp.toLowerCase()), ...words]) !== 1) throw new Error('its Bech32 checksum is wrong (a typo, or a truncated copy?)');
  const bytes = convertBits(words.slice(0, -6), 5, 8, false);
  if (!bytes) throw new Error('its Bech32 data has invalid padding');
  return { hrp, data: Buffer.from(bytes) };
}
