import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { LifeboatError } from '../errors';

/**
 * Manifest signatures: Ed25519 on Node's crypto. Backup workers hold the
 * private key (a PEM file that never goes into the repository); restore and
 * verify trust only the public keys in their own config. Someone who can only
 * write to the repository cannot make a manifest that verifies, and the
 * manifest pins every artifact's SHA-256, so no artifact can be swapped either.
 */
const PREFIX = 'lifeboat-ed25519:';
/** The DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface Signature {
  alg: 'ed25519';
  /** The public key (`lifeboat-ed25519:…`) that verifies it. */
  key: string;
  /** Base64 signature of the manifest file's exact bytes. */
  sig: string;
}

export function publicKeyText(key: KeyObject): string {
  const der = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return `${PREFIX}${der.subarray(SPKI_PREFIX.length).toString('base64')}`;
}

function parsePublicKey(text: string): KeyObject {
  if (!text.startsWith(PREFIX)) throw new LifeboatError('ConfigError', `${JSON.stringify(text.slice(0, 40))} is not a lifeboat signing public key (${PREFIX}…)`);
  const raw = Buffer.from(text.slice(PREFIX.length), 'base64');
  if (raw.length !== 32) throw new LifeboatError('ConfigError', `${JSON.stringify(text.slice(0, 40))} is not a 32-byte Ed25519 public key`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** A new signing key: the PEM of the private key (keep it private) and its public key line. */
export function generateSigningKey(): { pem: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey: publicKeyText(privateKey) };
}

export async function loadSigningKey(file: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw new LifeboatError('ConfigError', `cannot read signing key ${file} (${(err as NodeJS.ErrnoException).code ?? err}); check signing.keyFile`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new LifeboatError('ConfigError', `signing key ${file} is not a PEM private key (${(err as Error).message}); make one with 'lifeboat keygen --signing'`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new LifeboatError('ConfigError', `signing key ${file} is a ${key.asymmetricKeyType} key, not Ed25519; make one with 'lifeboat keygen --signing'`);
  return key;
}

export function signBytes(key: KeyObject, bytes: Buffer): Signature {
  return { alg: 'ed25519', key: publicKeyText(key), sig: sign(null, bytes, key).toString('base64') };
}

export type SignatureCheck = { ok: true; key: string } | { ok: false; why: string };

/** Whether `sig` is a valid signature of `bytes` by one of `trusted` (public key lines). */
export function checkSignature(bytes: Buffer, sig: unknown, trusted: readonly string[]): SignatureCheck {
  const s = sig as Partial<Signature> | null;
  if (!s || s.alg !== 'ed25519' || typeof s.key !== 'string' || typeof s.sig !== 'string') return { ok: false, why: 'the signature file is not a lifeboat Ed25519 signature' };
  if (!trusted.includes(s.key)) return { ok: false, why: `it is signed by ${s.key}, which is not one of the trusted signing.publicKeys` };
  let good = false;
  try {
    good = verify(null, bytes, parsePublicKey(s.key), Buffer.from(s.sig, 'base64'));
  } catch {
    good = false;
  }
  return good ? { ok: true, key: s.key } : { ok: false, why: `its signature by ${s.key} does not match its contents` };
}
