import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { closest, distance } from 'fastest-levenshtein';
import { z } from 'zod';
import { LifeboatError } from '../errors';

/**
 * Building blocks of lifeboat.yaml's one schema (zod): the config, each kind's
 * settings (src/stores/<kind>/settings.ts), the JSON Schema for editors and
 * the reference in docs/config.md all come from these declarations.
 */

/** What a schema needs to know about the file it reads. */
export interface SchemaContext {
  /** Folder of the config file: relative paths in it are resolved from here. */
  dir: string;
  /** Every secret file the parsed config references (filled while parsing). */
  secretFiles: string[];
}

export function schemaContext(configFile: string): SchemaContext {
  return { dir: resolve(configFile, '..'), secretFiles: [] };
}

/** The closest of `known` to `word`, if close enough to be a typo. */
export function suggest(word: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const best = closest(word, known as string[]);
  const d = distance(word.toLowerCase(), best.toLowerCase());
  return d < best.length && d <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

function unknownKeys(keys: string[], known: string[]): string {
  const parts = keys.map((k) => {
    const s = suggest(k, known);
    return `'${k}'${s ? ` (did you mean '${s}'?)` : ''}`;
  });
  return `has unknown setting${keys.length > 1 ? 's' : ''} ${parts.join(', ')}; known: ${known.join(', ')}`;
}

/** An object whose unknown keys are errors with a "did you mean". */
export function strict<T extends z.core.$ZodLooseShape>(shape: T) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? unknownKeys(iss.keys, known) : iss.code === 'invalid_type' ? wrongType('a mapping')(iss) : undefined),
  });
}

/** The message for a value of the wrong type: "is required" when it is missing. */
const wrongType = (expected: string) => (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : `must be ${expected}, not ${typeName(iss.input)}`);

function typeName(v: unknown): string {
  if (v === null || v === undefined) return 'empty';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a mapping' : `${typeof v} ${JSON.stringify(v).slice(0, 40)}`;
}

/** `a`, `b` or `c`, with a "did you mean" when the value is close to one. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {
    error: (iss) => {
      const given = typeof iss.input === 'string' ? iss.input : undefined;
      const s = given ? suggest(given, values) : undefined;
      return `must be one of ${values.map((v) => `'${v}'`).join(', ')}${given ? `, not '${given}'` : ''}${s ? ` (did you mean '${s}'?)` : ''}`;
    },
  });
}

export const text = () => z.string({ error: wrongType('a string') }).min(1, 'must not be empty');
export const bool = () => z.boolean({ error: wrongType('true or false') });
export const wholeNumber = (min = 1, max = Number.MAX_SAFE_INTEGER) =>
  z
    .number({ error: wrongType('a number') })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);
export const port = () => wholeNumber(1, 65535);
export const httpUrl = () => text().regex(/^https?:\/\/[^\s]+$/, 'must be an http(s) URL').transform((u) => u.replace(/\/+$/, ''));

/** A path in the config, resolved from the config file's folder. */
export const path = (c: SchemaContext) => text().transform((p) => (isAbsolute(p) ? p : resolve(c.dir, p)));

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** A name that becomes an object key, workflow id or SQL identifier (src/domain/names.ts). */
export const name = () => text().regex(NAME, "must use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit").refine((v) => !v.includes('..'), "must not contain '..'");

/** A secret is referenced, never inlined: `{ file: PATH }` (preferred) or `{ env: NAME }`. */
export type SecretRef = { file: string } | { env: string };

export const secretRef = (c: SchemaContext) =>
  z
    .union([strict({ file: text() }), strict({ env: text().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') })], {
      error: (iss) =>
        typeof iss.input === 'string'
          ? 'must reference the secret, not contain it: write { file: /path/to/secret } or { env: VAR_NAME }'
          : 'must be { file: PATH } or { env: NAME }',
    })
    .transform((ref): SecretRef => {
      if ('env' in ref) return { env: ref.env };
      const file = isAbsolute(ref.file) ? ref.file : resolve(c.dir, ref.file);
      c.secretFiles.push(file);
      return { file };
    })
    .meta({ description: 'a secret by reference: { file: PATH } (mode 600) or { env: NAME }' });

/** "90s", "30m", "26h", "7d" -> seconds. */
export function parseDuration(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(v.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd']);
}

/** Turns a zod failure into one ConfigError that names every bad field and its fix. */
export function configError(file: string, err: z.ZodError, prefix: (string | number)[] = []): LifeboatError {
  const lines = expandUnions(err.issues).map((iss) => {
    const at = [...prefix, ...iss.path].map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
    return `'${at || '(top level)'}' ${iss.message}`;
  });
  const body = lines.length === 1 ? lines[0] : `\n  - ${lines.join('\n  - ')}`;
  return new LifeboatError('ConfigError', `config ${file}: ${body}`);
}

type Issue = z.core.$ZodIssue;

/**
 * A value that matches no branch of a union (a hook that is neither a command
 * nor an HTTP call) is explained by the branch it was closest to: the one with
 * the fewest unknown keys, then the fewest problems. Unions with a message of
 * their own keep it.
 */
function expandUnions(issues: Issue[]): Issue[] {
  return issues.flatMap((iss) => {
    if (iss.code !== 'invalid_union' || !iss.errors?.length || iss.message !== 'Invalid input') return [iss];
    const score = (branch: Issue[]) => branch.filter((i) => i.code === 'unrecognized_keys').length * 1000 + branch.length;
    const best = [...iss.errors].sort((a, b) => score(a) - score(b))[0]!;
    return expandUnions(best.map((i) => ({ ...i, path: [...iss.path, ...i.path] }) as Issue));
  });
}

/** Parses `value` with `schema`, throwing a ConfigError that names fields from `prefix`. */
export function parseWith<S extends z.ZodType>(file: string, schema: S, value: unknown, prefix: (string | number)[] = []): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw configError(file, r.error, prefix);
  return r.data;
}

/**
 * A secret file must exist, hold something, and be private to its owner
 * (like ssh keys): a world-readable password file is an error, not a warning.
 */
export function checkSecretFile(file: string, what: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new LifeboatError('ConfigError', `${what}: secret file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? err}); check the path in the config`);
  }
  if (!st.isFile()) throw new LifeboatError('ConfigError', `${what}: secret file ${file} is not a file`);
  if (st.size === 0) throw new LifeboatError('ConfigError', `${what}: secret file ${file} is empty`);
  if ((st.mode & 0o077) !== 0) {
    throw new LifeboatError('ConfigError', `${what}: secret file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); run: chmod 600 ${file}`);
  }
}
