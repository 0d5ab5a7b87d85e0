import { z } from 'zod';
import { httpUrl, path, secretRef, strict, text, wholeNumber, type SchemaContext, type SecretRef } from './fields';

/**
 * Writer hooks and post-restore checks of a target. A hook is a command (argv,
 * never a shell) or an HTTP call; each runs as its own activity with its own
 * timeout, gets the run's context as environment variables (docs/hooks.md),
 * and is retried only as configured.
 */

const common = {
  /** The hook is stopped (and fails) after this long. */
  timeoutSeconds: wholeNumber(1, 7 * 24 * 3600).default(60).meta({ description: 'the hook is stopped and fails after this many seconds (default 60)' }),
  /** Extra attempts after a failure; 0 (default): a failed hook is never re-run blindly. */
  retries: wholeNumber(0, 10).default(0).meta({ description: 'extra attempts after a failure (default 0: a failed migration is not re-run blindly)' }),
};

const commandHook = (c: SchemaContext) =>
  strict({
    command: z
      .array(text(), { error: (iss) => (typeof iss.input === 'string' ? `must be a list (argv), not a shell string: write [${JSON.stringify(iss.input.split(' ')[0])}, …]` : 'must be a list of strings (argv; no shell)') })
      .min(1, 'must name the program to run'),
    /** Extra environment (not secrets: pass a file path instead). */
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'), z.string()).optional(),
    /** Working folder (default: the worker's). */
    cwd: path(c).optional(),
    ...common,
  });

const httpHook = (c: SchemaContext) =>
  strict({
    http: strict({
      url: httpUrl(),
      method: text().transform((m) => m.toUpperCase()).default('POST'),
      /** Header values are plain strings or secret references (e.g. an Authorization token in a file). */
      headers: z.record(text(), z.union([z.string(), secretRef(c)])).default({}),
    }),
    ...common,
  });

export const hookSchema = (c: SchemaContext) =>
  z.union([commandHook(c), httpHook(c)], {
    error: (iss) => (typeof iss.input === 'object' && iss.input !== null && !Array.isArray(iss.input) ? undefined : 'must be { command: [argv…] } or { http: { url } }'),
  });

export type Hook =
  | { command: string[]; env?: Record<string, string>; cwd?: string; timeoutSeconds: number; retries: number }
  | { http: { url: string; method: string; headers: Record<string, string | SecretRef> }; timeoutSeconds: number; retries: number };

export const hooksSchema = (c: SchemaContext) =>
  strict({
    stopWriters: z.array(hookSchema(c)).default([]).meta({ description: 'stop what writes into the target, before a restore drops anything' }),
    startWriters: z.array(hookSchema(c)).default([]).meta({ description: 'start it again after every restore, whatever happened' }),
    postRestore: z.array(hookSchema(c)).default([]).meta({ description: 'after the restore, before writers start (e.g. migrations)' }),
  });

export interface TargetHooks {
  /** Stop what writes into the target before a restore. */
  stopWriters: Hook[];
  /** Start it again: after every restore, whatever happened. */
  startWriters: Hook[];
  /** After the restore and before writers start, e.g. migrations. */
  postRestore: Hook[];
}

export type HookPhase = keyof TargetHooks;

export const checksSchema = () =>
  strict({
    readyUrl: httpUrl().optional().meta({ description: 'answers 2xx when the application is back' }),
    readyTimeoutSeconds: wholeNumber(1, 24 * 3600).default(120),
    sql: z
      .array(strict({ database: text().optional(), query: text() }))
      .default([])
      .meta({ description: 'read-only queries run after a restore; each must return a true first column' }),
  });

export interface TargetChecks {
  /** Answers 2xx when the application is back. */
  readyUrl?: string;
  readyTimeoutSeconds: number;
  /** Queries the store runs after a restore; each must return a true first column. */
  sql: Array<{ database?: string; query: string }>;
}
