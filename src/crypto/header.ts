/** The age header: recipient stanzas that wrap the file key, and the MAC that binds them to it. */
import { createHmac, generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import { LifeboatError } from '../errors';
import { b64decode, b64encode, COLUMNS, FILE_KEY_SIZE, hkdf, openWithZeroNonce, sealWithZeroNonce, VERSION_LINE, X25519_LABEL } from './format';
import { publicKeyObject, x25519, type X25519Identity, type X25519Recipient } from './keys';

export interface Stanza {
  type: string;
  args: string[];
  body: Buffer;
}

export interface ParsedHeader {
  stanzas: Stanza[];
  /** The header bytes up to and including '---', which the MAC covers. */
  macInput: Buffer;
  mac: Buffer;
}

function badHeader(detail: string): LifeboatError {
  return new LifeboatError('AgeBadHeader', `age header is malformed: ${detail}; the file is damaged or was not written by age or lifeboat`);
}

function headerMacKey(fileKey: Buffer): Buffer {
  return hkdf(fileKey, Buffer.alloc(0), 'header');
}

function wrapLines(b64: string): string {
  // Every body line is full (64 columns) but the last, which is shorter and may be empty.
  let out = '';
  for (let i = 0; i + COLUMNS <= b64.length; i += COLUMNS) out += `${b64.slice(i, i + COLUMNS)}\n`;
  return `${out}${b64.slice(b64.length - (b64.length % COLUMNS))}\n`;
}

function x25519Stanza(recipient: X25519Recipient, fileKey: Buffer): string {
  const eph = generateKeyPairSync('x25519');
  const share = eph.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const shared = x25519(eph.privateKey, recipient.key);
  if (!shared) throw new LifeboatError('AgeBadKey', `age recipient '${recipient.recipient}' is a low-order point that no identity can match; replace it with a real key`);
  const wrapKey = hkdf(shared, Buffer.concat([share, recipient.publicKey]), X25519_LABEL);
  return `-> X25519 ${b64encode(share)}\n${wrapLines(b64encode(sealWithZeroNonce(wrapKey, fileKey)))}`;
}

/** The whole header, MAC line included, for a fresh file key. */
export function buildHeader(recipients: readonly X25519Recipient[], fileKey: Buffer): Buffer {
  const head = Buffer.from(`${VERSION_LINE}\n${recipients.map((r) => x25519Stanza(r, fileKey)).join('')}---`, 'latin1');
  const mac = createHmac('sha256', headerMacKey(fileKey)).update(head).digest();
  return Buffer.concat([head, Buffer.from(` ${b64encode(mac)}\n`, 'latin1')]);
}

function isArg(s: string): boolean {
  return s.length > 0 && /^[\x21-\x7e]+$/.test(s);
}

/**
 * Parses a complete header (through the MAC line's newline) as strictly as
 * age does: LF line ends, canonical unpadded base64, 64-column bodies.
 */
export function parseHeader(header: Buffer): ParsedHeader {
  const lines = header.toString('latin1').split('\n');
  if (lines.pop() !== '') throw badHeader('it does not end with a newline');
  if (lines[0] !== VERSION_LINE) throw badHeader(`the first line is not '${VERSION_LINE}'`);
  const stanzas: Stanza[] = [];
  let i = 1;
  for (;;) {
    const line = lines[i];
    if (line === undefined) throw badHeader('it ends before the MAC line');
    if (line.startsWith('---')) break;
    if (!line.startsWith('-> ')) throw badHeader(`line ${i + 1} is neither a recipient stanza ('-> ') nor the MAC line ('--- ')`);
    const args = line.slice(3).split(' ');
    if (!args.every(isArg)) throw badHeader(`the stanza on line ${i + 1} has an empty or non-printable argument`);
    const stanzaLine = i + 1;
    let b64 = '';
    for (;;) {
      i++;
      const body = lines[i];
      if (body === undefined) throw badHeader(`the stanza on line ${stanzaLine} has an unterminated body`);
      if (body.length > COLUMNS) throw badHeader(`line ${i + 1} is longer than ${COLUMNS} columns`);
      b64 += body;
      if (body.length < COLUMNS) break;
    }
    const body = b64decode(b64);
    if (!body) throw badHeader(`the stanza on line ${stanzaLine} has a body that is not canonical unpadded base64`);
    stanzas.push({ type: args[0]!, args: args.slice(1), body });
    i++;
  }
  if (i !== lines.length - 1) throw badHeader('there is data after the MAC line');
  const macLine = lines[i]!;
  const mac = macLine.startsWith('--- ') ? b64decode(macLine.slice(4)) : null;
  if (!mac || mac.length !== 32) throw badHeader(`the MAC line is not '--- ' followed by a 32-byte base64 MAC`);
  if (stanzas.length === 0) throw badHeader('it has no recipient stanza');
  const macStart = header.length - macLine.length - 1;
  return { stanzas, macInput: header.subarray(0, macStart + 3), mac };
}

/**
 * The file key, from the first X25519 stanza that one of the identities
 * opens; null when none does. A malformed X25519 stanza is an error, as in age.
 */
export function unwrapFileKey(stanzas: readonly Stanza[], identities: readonly X25519Identity[]): Buffer | null {
  for (const [n, s] of stanzas.entries()) {
    if (s.type !== 'X25519') continue;
    const share = s.args.length === 1 ? b64decode(s.args[0]!) : null;
    if (!share || share.length !== 32 || s.body.length !== FILE_KEY_SIZE + 16) throw badHeader(`X25519 stanza #${n + 1} is malformed`);
    const ephemeral = publicKeyObject(share);
    for (const id of identities) {
      const shared = x25519(id.privateKey, ephemeral);
      if (!shared) throw badHeader(`X25519 stanza #${n + 1} has a low-order ephemeral share`);
      const wrapKey = hkdf(shared, Buffer.concat([share, id.publicKey]), X25519_LABEL);
      const fileKey = openWithZeroNonce(wrapKey, s.body);
      if (fileKey) return fileKey;
    }
  }
  return null;
}

export function headerMacMatches(parsed: ParsedHeader, fileKey: Buffer): boolean {
  const mac = createHmac('sha256', headerMacKey(fileKey)).update(parsed.macInput).digest();
  return timingSafeEqual(mac, parsed.mac);
}
