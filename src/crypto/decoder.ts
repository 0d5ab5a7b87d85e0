/** The age reading state machine: header, file key, then STREAM chunks with one chunk of lookahead. */
import { createDecipheriv } from 'node:crypto';
import { LifeboatError } from '../errors';
import { ARMOR_BEGIN, CHUNK_SIZE, ENC_CHUNK_SIZE, hkdf, MAX_HEADER_SIZE, PAYLOAD_NONCE_SIZE, streamNonce, TAG_SIZE, VERSION_LINE } from './format';
import { headerMacMatches, parseHeader, unwrapFileKey } from './header';
import { recipientFingerprint, type X25519Identity } from './keys';

export interface OpenOptions {
  /**
   * Fingerprints of the recipients the file was sealed for (the manifest's):
   * an age file does not name its recipients, so this only improves the
   * message when no identity matches.
   */
  sealedFor?: readonly string[];
}

const VERSION_PREFIX = Buffer.from(`${VERSION_LINE}\n`, 'latin1');
/** Input that differs from this is not age at all; input that differs only after it is a broken age header. */
const AGE_PREFIX = Buffer.from('age-encryption.org/', 'latin1');
const MAC_LINE_START = Buffer.from('\n---', 'latin1');

const fail = (type: string, message: string) => new LifeboatError(type, message);

/**
 * The age reading state machine, independent of the stream it is fed from.
 * `write` and `end` call `emit` with authenticated plaintext only, and throw
 * LifeboatError on the first defect, after which the decoder is dead.
 */
export class AgeDecoder {
  private phase: 'header' | 'nonce' | 'payload' | 'done' = 'header';
  private head = Buffer.allocUnsafe(1024);
  private headLength = 0;
  private macAt = -1;
  private payloadKey: Buffer | null = null;
  private readonly nonce = Buffer.alloc(12);
  // One ciphertext chunk of lookahead: a full chunk is opened only once a
  // further byte proves it is not the last, or at the end, as the last.
  private readonly pending = Buffer.allocUnsafe(ENC_CHUNK_SIZE);
  private fill = 0;
  /** Chunks authenticated so far. */
  chunks = 0;
  /** Plaintext bytes emitted so far. */
  plaintextBytes = 0;

  constructor(
    private readonly identities: readonly X25519Identity[],
    private readonly emit: (plaintext: Buffer) => void,
    private readonly options: OpenOptions = {},
  ) {}

  write(data: Buffer): void {
    let off = 0;
    if (this.phase === 'header') {
      off = this.readHeader(data);
      if (off < 0) return;
    }
    if (this.phase === 'nonce') off = this.readNonce(data, off);
    if (this.phase === 'payload') this.readPayload(data, off);
  }

  end(): void {
    switch (this.phase) {
      case 'header': {
        if (this.headLength === 0) throw fail('AgeNotEncrypted', `input is not an age file: it is empty; was it encrypted?`);
        throw fail('AgeBadHeader', `age header is truncated: the input ends after ${this.headLength} bytes, before the header's MAC line; the file was cut short, fetch or copy it again`);
      }
      case 'nonce':
        throw fail('AgeTruncated', 'age file is truncated: it ends inside the payload nonce, before any chunk; fetch or copy it again');
      case 'payload':
        this.openChunk(this.pending.subarray(0, this.fill), true);
        return;
      case 'done':
        return;
    }
  }

  /** Returns the offset where the payload starts in `data`, or -1 if the header is not complete yet. */
  private readHeader(data: Buffer): number {
    const before = this.headLength;
    // Copy no more than the header may hold: a header that long is refused below anyway.
    const take = Math.min(data.length, MAX_HEADER_SIZE + 1 - before);
    if (before + take > this.head.length) {
      const grown = Buffer.allocUnsafe(Math.max(before + take, 2 * this.head.length));
      this.head.copy(grown, 0, 0, before);
      this.head = grown;
    }
    data.copy(this.head, before, 0, take);
    this.headLength += take;
    const buf = this.head.subarray(0, this.headLength);
    const n = Math.min(buf.length, AGE_PREFIX.length);
    if (!buf.subarray(0, n).equals(AGE_PREFIX.subarray(0, n))) throw this.notAge(buf);
    if (buf.length >= VERSION_PREFIX.length && !buf.subarray(0, VERSION_PREFIX.length).equals(VERSION_PREFIX)) {
      throw fail('AgeBadHeader', `age header is malformed: its first line is not '${VERSION_LINE}' (another age version, or CRLF line ends from a text-mode copy?); copy the file again in binary mode`);
    }
    // '\n---' starts the MAC line; it and the line's end may each arrive in a later write.
    if (this.macAt < 0) this.macAt = buf.indexOf(MAC_LINE_START, Math.max(0, before - MAC_LINE_START.length + 1));
    const eol = this.macAt < 0 ? -1 : buf.indexOf(0x0a, Math.max(this.macAt + 1, before));
    if (eol < 0) {
      if (buf.length > MAX_HEADER_SIZE) throw fail('AgeBadHeader', `age header is malformed: it is longer than ${MAX_HEADER_SIZE} bytes without a MAC line; the file is damaged or not an age file`);
      return -1;
    }
    this.unlock(buf.subarray(0, eol + 1));
    this.head = Buffer.alloc(0);
    // Earlier writes held no complete header, so the header ends inside this one.
    return eol + 1 - before;
  }

  private notAge(buf: Buffer): LifeboatError {
    const armored = buf.subarray(0, ARMOR_BEGIN.length).toString('latin1') === ARMOR_BEGIN;
    return fail(
      'AgeNotEncrypted',
      armored
        ? `input is ASCII-armored age ('${ARMOR_BEGIN}'); lifeboat reads binary age only: decrypt it with 'age -d', or remove the armor first`
        : `input is not an age file (it does not start with '${VERSION_LINE}'); was it encrypted?`,
    );
  }

  private unlock(header: Buffer): void {
    const parsed = parseHeader(header);
    const fileKey = unwrapFileKey(parsed.stanzas, this.identities);
    if (!fileKey) throw this.noMatch(parsed.stanzas.map((s) => s.type));
    if (!headerMacMatches(parsed, fileKey)) {
      throw fail('AgeBadHeader', 'age header MAC does not match: the header was modified after it was written (or the file key was tampered with); the file cannot be trusted');
    }
    this.payloadKey = fileKey; // until the nonce arrives
    this.phase = 'nonce';
  }

  private noMatch(types: string[]): LifeboatError {
    const tried = this.identities.map((i) => recipientFingerprint(i.recipient)).join(', ');
    const x = types.filter((t) => t === 'X25519').length;
    const sealedFor = this.options.sealedFor?.length
      ? `it was sealed for recipients with fingerprints ${this.options.sealedFor.join(', ')}`
      : `it was sealed for ${x} X25519 recipient(s)${types.includes('scrypt') ? ' and/or a passphrase (scrypt), which lifeboat does not read' : ''}; an age file does not name them, see the backup manifest for their fingerprints`;
    return fail('AgeNoMatchingIdentity', `no identity matches any recipient of this file; ${sealedFor}; the identities tried have recipient fingerprints ${tried}; use the identity file of one of the recipients`);
  }

  private readNonce(data: Buffer, off: number): number {
    const take = Math.min(PAYLOAD_NONCE_SIZE - this.fill, data.length - off);
    data.copy(this.pending, this.fill, off, off + take);
    this.fill += take;
    if (this.fill < PAYLOAD_NONCE_SIZE) return data.length;
    const fileKey = this.payloadKey!;
    this.payloadKey = hkdf(fileKey, this.pending.subarray(0, PAYLOAD_NONCE_SIZE), 'payload');
    fileKey.fill(0);
    this.fill = 0;
    this.phase = 'payload';
    return off + take;
  }

  private readPayload(data: Buffer, off: number): void {
    while (off < data.length) {
      if (this.fill === ENC_CHUNK_SIZE) {
        this.openChunk(this.pending, false);
        this.fill = 0;
      }
      if (this.fill === 0 && data.length - off > ENC_CHUNK_SIZE) {
        this.openChunk(data.subarray(off, off + ENC_CHUNK_SIZE), false);
        off += ENC_CHUNK_SIZE;
        continue;
      }
      const n = Math.min(ENC_CHUNK_SIZE - this.fill, data.length - off);
      data.copy(this.pending, this.fill, off, off + n);
      this.fill += n;
      off += n;
    }
  }

  private trailing(): LifeboatError {
    return fail('AgeAuthFailed', `age file has data after its final chunk (chunk ${this.chunks - 1}): it was modified or two files were joined; the file cannot be trusted`);
  }

  private tryOpen(sealed: Buffer, index: number, last: boolean): Buffer | null {
    const d = createDecipheriv('chacha20-poly1305', this.payloadKey!, streamNonce(this.nonce, index, last), { authTagLength: TAG_SIZE });
    d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const plaintext = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    try {
      d.final();
    } catch {
      return null;
    }
    return plaintext;
  }

  private openChunk(sealed: Buffer, last: boolean): void {
    const k = this.chunks;
    const at = `chunk ${k} (payload bytes ${k * ENC_CHUNK_SIZE}–${k * ENC_CHUNK_SIZE + sealed.length - 1})`;
    if (last && (sealed.length < TAG_SIZE || (sealed.length === TAG_SIZE && k > 0))) {
      throw fail('AgeTruncated', `age file is truncated: it ends ${sealed.length} bytes into chunk ${k}, before the final chunk; fetch or copy it again`);
    }
    const plaintext = this.tryOpen(sealed, k, last);
    if (!plaintext) {
      // Work out why, for the message only: nothing from this chunk is emitted either way.
      if (last && sealed.length === ENC_CHUNK_SIZE && this.tryOpen(sealed, k, false)) {
        throw fail('AgeTruncated', `age file is truncated: it ends after chunk ${k}, which is not the final chunk (${(k + 1) * CHUNK_SIZE} plaintext bytes authenticated, more were sealed); fetch or copy it again`);
      }
      if (!last && this.tryOpen(sealed, k, true)) {
        this.chunks++;
        throw this.trailing();
      }
      throw fail('AgeAuthFailed', `age ${at} failed authentication: the file was modified, truncated mid-chunk, or its chunks reordered; the file cannot be trusted (nothing from this chunk was released)`);
    }
    this.chunks++;
    if (last) this.phase = 'done';
    if (plaintext.length > 0) {
      this.plaintextBytes += plaintext.length;
      this.emit(plaintext);
    }
  }
}
