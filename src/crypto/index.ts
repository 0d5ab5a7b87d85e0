/**
 * The age file format (https://age-encryption.org/v1) with X25519 recipients,
 * on Node's native crypto. Files sealed here open with the stock `age -d`, and
 * files from `age -r`/`age -R` open here. See docs/encryption.md.
 */
export { generateIdentity, parseIdentityFile, parseRecipient, recipientFingerprint, recipientOf } from './keys';
export type { X25519Recipient } from './keys';
export { sealStream } from './seal';
export { openStream, verifyStream } from './open';
export type { AgeVerifier, OpenOptions } from './open';
