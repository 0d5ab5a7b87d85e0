/**
 * age X25519 keys: `age1…` recipients (public) and `AGE-SECRET-KEY-1…`
 * identities (secret). Identities never appear in an error message; recipients
 * may, shortened.
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { LifeboatError } from '../errors';
import { bech32Decode, bech32Encode } from './bech32';

const RECIPIENT_HRP = 'age';
const IDENTITY_HRP = 'AGE-SECRET-KEY-';
const KEY_SIZE = 32;
// DER wrappers that turn a raw 32-byte X25519 key into a KeyObject (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export interface X25519Recipient {
  /** The canonical `age1…` string. */
  readonly recipient: string;
  readonly publicKey: Buffer;
  readonly key: KeyObject;
}

export interface X25519Identity {
  /** The recipient this identity decrypts for: safe to print and to fingerprint. */
  readonly recipient: string;
  readonly publicKey: Buffer;
  readonly privateKey: KeyObject;
}

function badKey(message: string): LifeboatError {
  return new LifeboatError('AgeBadKey', message);
}

/** Something to show for a value that failed to parse as a recipient, without leaking anything secret. */
function shown(s: string): string {
  if (/secret|private/i.test(s)) return `'${s.slice(0, 4)}…' (it looks like a secret key; not shown)`;
  const clean = s.replace(/[^\x21-\x7e]/g, '?');
  return clean.length > 24 ? `'${clean.slice(0, 20)}…' (${s.length} characters)` : `'${clean}'`;
}

function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
}

export function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

function encodeRecipient(publicKey: Uint8Array): string {
  return bech32Encode(RECIPIENT_HRP, publicKey);
}

/** X25519(private, public); null for a low-order public key (all-zero shared secret), which age rejects. */
export function x25519(privateKey: KeyObject, publicKey: KeyObject): Buffer | null {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey });
  } catch {
    return null;
  }
  return shared.every((b) => b === 0) ? null : shared;
}

/** A fresh identity and its recipient, in the same text form as age-keygen's. */
export function generateIdentity(): { identity: string; recipient: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const secret = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length);
  return {
    identity: bech32Encode(IDENTITY_HRP, secret).toUpperCase(),
    recipient: encodeRecipient(rawPublicKey(publicKey)),
  };
}

/**
 * Parses an `age1…` recipient exactly as age does (lowercase, Bech32 with
 * prefix 'age', 32 bytes); throws AgeBadKey naming the value and the fix.
 */
export function parseRecipient(s: string): X25519Recipient {
  const what = `age recipient ${shown(s)}`;
  if (typeof s !== 'string' || s.length === 0) throw badKey('age recipient is empty; give an X25519 recipient (age1…) as printed by age-keygen or lifeboat keygen');
  if (/^age-secret-key-/i.test(s)) {
    throw badKey(`${what} is an identity (a secret key), not a recipient; give its public recipient instead ('age-keygen -y IDENTITYFILE' prints it) and keep the identity off backup hosts`);
  }
  if (/^ssh-|^ecdsa-/.test(s)) throw badKey(`${what} is an SSH key; lifeboat supports only age X25519 recipients (age1…): make one with age-keygen or lifeboat keygen`);
  let decoded;
  try {
    decoded = bech32Decode(s);
  } catch (err) {
    throw badKey(`${what} is not valid: ${(err as Error).message}; copy it again from the '# public key:' line of the identity file or from 'age-keygen -y IDENTITYFILE'`);
  }
  if (decoded.hrp !== RECIPIENT_HRP) {
    const hint = decoded.hrp.toLowerCase().startsWith('age1')
      ? 'it is an age plugin recipient, and lifeboat supports only X25519 recipients (age1…)'
      : decoded.hrp === 'AGE'
        ? 'recipients are written in lowercase'
        : `its prefix is '${decoded.hrp}', not 'age'`;
    throw badKey(`${what} is not an X25519 recipient: ${hint}`);
  }
  if (decoded.data.length !== KEY_SIZE) throw badKey(`${what} holds ${decoded.data.length} bytes of key, not 32; copy it again`);
  return { recipient: s, publicKey: decoded.data, key: publicKeyObject(decoded.data) };
}

/**
 * Parses an `AGE-SECRET-KEY-1…` identity. `where` names it in errors
 * (e.g. "line 3 of the identity file"); the value itself is never printed.
 */
export function parseIdentity(s: string, where = 'age identity'): X25519Identity {
  const fix = 'an identity is one AGE-SECRET-KEY-1… line as written by age-keygen or lifeboat keygen';
  if (typeof s !== 'string' || s.length === 0) throw badKey(`${where} is empty; ${fix}`);
  if (/^age1/i.test(s)) throw badKey(`${where} is a recipient (public key, age1…), not an identity; ${fix}`);
  let decoded;
  try {
    decoded = bech32Decode(s);
  } catch (err) {
    throw badKey(`${where} is not a valid age identity: ${(err as Error).message}; ${fix}`);
  }
  if (decoded.hrp !== IDENTITY_HRP) {
    const hint = decoded.hrp.toUpperCase().startsWith('AGE-PLUGIN-')
      ? 'it is an age plugin identity, and lifeboat supports only X25519 identities'
      : decoded.hrp === IDENTITY_HRP.toLowerCase()
        ? 'identities are written in uppercase'
        : 'its prefix is not AGE-SECRET-KEY-';
    throw badKey(`${where} is not an X25519 identity: ${hint}; ${fix}`);
  }
  if (decoded.data.length !== KEY_SIZE) throw badKey(`${where} holds ${decoded.data.length} bytes of key, not 32; ${fix}`);
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, decoded.data]), format: 'der', type: 'pkcs8' });
  decoded.data.fill(0);
  const publicKey = rawPublicKey(createPublicKey(privateKey));
  return { recipient: encodeRecipient(publicKey), publicKey, privateKey };
}

/** The `age1…` recipient of an identity, like `age-keygen -y`. */
export function recipientOf(identity: string): string {
  return parseIdentity(identity).recipient;
}

/**
 * The identities of an identity file in age-keygen's format: one key per
 * line, `#` comments and blank lines ignored. Every key is validated; errors
 * name the line, never its content.
 */
export function parseIdentityFile(text: string): string[] {
  const out: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    parseIdentity(line, `line ${i + 1} of the age identity file`);
    out.push(line);
  });
  if (out.length === 0) {
    throw badKey('the age identity file holds no identity (only comments or blank lines); it needs an AGE-SECRET-KEY-1… line as written by age-keygen or lifeboat keygen');
  }
  return out;
}

/**
 * A short, stable name for a recipient, for manifests and messages: the first
 * 16 hex digits of the SHA-256 of its `age1…` string. Throws AgeBadKey when
 * it is not a recipient (so an identity is never fingerprinted by mistake).
 */
export function recipientFingerprint(recipient: string): string {
  const r = parseRecipient(recipient).recipient;
  return createHash('sha256').update(r).digest('hex').slice(0, 16);
}
