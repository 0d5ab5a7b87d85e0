/** Constants and small primitives of the age v1 format (https://age-encryption.org/v1). */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';

export const VERSION_LINE = 'age-encryption.org/v1';
export const X25519_LABEL = 'age-encryption.org/v1/X25519';
export const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';

export const FILE_KEY_SIZE = 16;
export const PAYLOAD_NONCE_SIZE = 16;
export const TAG_SIZE = 16;
/** Plaintext bytes per STREAM chunk. */
export const CHUNK_SIZE = 64 * 1024;
/** Ciphertext bytes of every chunk but the last. */
export const ENC_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
/** Header lines (stanza bodies) wrap at this many base64 columns. */
export const COLUMNS = 64;
/** A header larger than this is not something lifeboat (or age) wrote; refusing it bounds memory. */
export const MAX_HEADER_SIZE = 1024 * 1024;

const B64_CHARS = /^[A-Za-z0-9+/]*$/;

/** Standard base64 without padding, as age writes it. */
export function b64encode(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64').replace(/=+$/, '');
}

/** Strict decoding: no padding, no stray characters, canonical trailing bits. Returns null when invalid. */
export function b64decode(s: string): Buffer | null {
  if (!B64_CHARS.test(s) || s.length % 4 === 1) return null;
  const out = Buffer.from(s, 'base64');
  return b64encode(out) === s ? out : null;
}

export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string, length = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/** The STREAM nonce: 11-byte big-endian chunk counter, then 0x01 on the final chunk. Written into `out`. */
export function streamNonce(out: Buffer, counter: number, last: boolean): Buffer {
  out.fill(0, 0, 5);
  out.writeUIntBE(counter, 5, 6);
  out[11] = last ? 1 : 0;
  return out;
}

const ZERO_NONCE = Buffer.alloc(12);

/** ChaCha20-Poly1305 with an all-zero nonce, used once per key to wrap a file key. */
export function sealWithZeroNonce(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_SIZE });
  const ct = c.update(plaintext);
  c.final();
  return Buffer.concat([ct, c.getAuthTag()]);
}

/** The opposite of sealWithZeroNonce; null when it does not authenticate. */
export function openWithZeroNonce(key: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < TAG_SIZE) return null;
  const d = createDecipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_SIZE });
  d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const pt = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    d.final();
  } catch {
    return null;
  }
  return pt;
}
