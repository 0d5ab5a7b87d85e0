import { open as openFile, readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { generateIdentity, openStream, parseIdentityFile, parseRecipient, sealStream } from '../crypto';
import { generateSigningKey } from '../crypto/sign';
import { LifeboatError } from '../errors';

/**
 * keygen / seal / open: the age tool's verbs, for an operator on a fresh node
 * who has lifeboat but not age. Same flags as `age` and `age-keygen`; secrets
 * only ever come from files, never from arguments.
 */
export async function keygen(o: { output?: string }): Promise<number> {
  const { identity, recipient } = generateIdentity();
  const text = `# created: ${new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')}\n# public key: ${recipient}\n${identity}\n`;
  if (o.output) {
    // 'wx': never overwrite an existing identity file, whose loss would make backups unreadable.
    const fh = await openFile(o.output, 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
      throw new LifeboatError('ConfigError', err.code === 'EEXIST' ? `${o.output} already exists; not overwriting an identity file` : `cannot create ${o.output}: ${err.message}`);
    });
    await fh.writeFile(text);
    await fh.close();
  } else {
    process.stdout.write(text);
  }
  process.stderr.write(`Public key: ${recipient}\n`);
  return 0;
}

/** An Ed25519 manifest-signing key: the PEM for signing.keyFile, and the public key for signing.publicKeys. */
export async function signingKeygen(o: { output?: string }): Promise<number> {
  const { pem, publicKey } = generateSigningKey();
  if (o.output) {
    const fh = await openFile(o.output, 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
      throw new LifeboatError('ConfigError', err.code === 'EEXIST' ? `${o.output} already exists; not overwriting a signing key` : `cannot create ${o.output}: ${err.message}`);
    });
    await fh.writeFile(pem);
    await fh.close();
  } else {
    process.stdout.write(pem);
  }
  process.stderr.write(`Public key (for signing.publicKeys): ${publicKey}\n`);
  return 0;
}

export async function seal(o: { recipient: string[]; recipientsFile: string[] }): Promise<number> {
  const recipients = [...o.recipient];
  for (const f of o.recipientsFile) {
    const lines = (await readFile(f, 'utf8')).split(/\r?\n/).map((l) => l.trim());
    recipients.push(...lines.filter((l) => l && !l.startsWith('#')));
  }
  if (recipients.length === 0) throw new LifeboatError('ConfigError', 'seal needs at least one recipient: -r age1… or -R FILE');
  recipients.forEach((r) => parseRecipient(r));
  await pipeline(process.stdin, sealStream(recipients), process.stdout);
  return 0;
}

export async function open(o: { identity: string[] }): Promise<number> {
  if (o.identity.length === 0) throw new LifeboatError('ConfigError', 'open needs an identity file: -i FILE (a key is never accepted on the command line)');
  const identities: string[] = [];
  for (const f of o.identity) identities.push(...parseIdentityFile(await readFile(f, 'utf8')));
  await pipeline(process.stdin, openStream(identities), process.stdout);
  return 0;
}
