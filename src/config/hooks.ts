import { LifeboatError } from '../errors';

/** A writer hook: a command (argv, never a shell) or an HTTP call, each with a timeout. */
export type Hook =
  | { command: string[]; timeoutSeconds: number }
  | { http: { url: string; method: string; headers: Record<string, string> }; timeoutSeconds: number };

export interface TargetHooks {
  /** Stop what writes into the target before a restore. */
  stopWriters: Hook[];
  /** Start it again: after every restore, whatever happened. */
  startWriters: Hook[];
  /** After the restore and before writers start, e.g. migrations (must be idempotent). */
  postRestore: Hook[];
}

export interface TargetChecks {
  /** Answers 2xx when the application is back. */
  readyUrl?: string;
  readyTimeoutSeconds: number;
  /** Queries the store runs after a restore; each must return a true first column. */
  sql: Array<{ database?: string; query: string }>;
}

const PHASES = ['stopWriters', 'startWriters', 'postRestore'] as const;

function bad(file: string, field: string, why: string): never {
  throw new LifeboatError('ConfigError', `config ${file}: '${field}' ${why}`);
}

function hook(file: string, field: string, v: unknown): Hook {
  if (typeof v !== 'object' || v === null) bad(file, field, 'must be { command: [argv…] } or { http: { url } }');
  const h = v as Record<string, unknown>;
  const timeoutSeconds = h.timeoutSeconds === undefined ? 60 : Number(h.timeoutSeconds);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) bad(file, `${field}.timeoutSeconds`, 'must be a positive number');
  if (Array.isArray(h.command)) {
    if (h.command.length === 0 || !h.command.every((a) => typeof a === 'string')) bad(file, `${field}.command`, 'must be a non-empty list of strings (argv; no shell)');
    return { command: h.command as string[], timeoutSeconds };
  }
  if (typeof h.command === 'string') bad(file, `${field}.command`, `must be a list (argv), not a shell string: write [${JSON.stringify(h.command.split(' ')[0])}, …]`);
  if (typeof h.http === 'object' && h.http !== null) {
    const x = h.http as Record<string, unknown>;
    if (typeof x.url !== 'string' || !/^https?:\/\//.test(x.url)) bad(file, `${field}.http.url`, 'must be an http(s) URL');
    const headers = (x.headers ?? {}) as Record<string, string>;
    return { http: { url: x.url, method: typeof x.method === 'string' ? x.method.toUpperCase() : 'POST', headers }, timeoutSeconds };
  }
  bad(file, field, 'must be { command: [argv…] } or { http: { url } }');
}

export function parseHooks(file: string, target: string, v: unknown): TargetHooks {
  const out: TargetHooks = { stopWriters: [], startWriters: [], postRestore: [] };
  if (v === undefined) return out;
  if (typeof v !== 'object' || v === null) bad(file, `targets.${target}.hooks`, 'must be a mapping');
  const h = v as Record<string, unknown>;
  for (const phase of PHASES) {
    const list = h[phase] === undefined ? [] : h[phase];
    if (!Array.isArray(list)) bad(file, `targets.${target}.hooks.${phase}`, 'must be a list of hooks');
    out[phase] = list.map((x, i) => hook(file, `targets.${target}.hooks.${phase}[${i}]`, x));
  }
  const unknown = Object.keys(h).filter((k) => !(PHASES as readonly string[]).includes(k));
  if (unknown.length) bad(file, `targets.${target}.hooks.${unknown[0]}`, `is not a hook phase (${PHASES.join(', ')})`);
  return out;
}

export function parseChecks(file: string, target: string, v: unknown): TargetChecks {
  const out: TargetChecks = { readyTimeoutSeconds: 120, sql: [] };
  if (v === undefined) return out;
  if (typeof v !== 'object' || v === null) bad(file, `targets.${target}.checks`, 'must be a mapping');
  const c = v as Record<string, unknown>;
  if (c.readyUrl !== undefined) {
    if (typeof c.readyUrl !== 'string' || !/^https?:\/\//.test(c.readyUrl)) bad(file, `targets.${target}.checks.readyUrl`, 'must be an http(s) URL');
    out.readyUrl = c.readyUrl;
  }
  if (c.readyTimeoutSeconds !== undefined) out.readyTimeoutSeconds = Number(c.readyTimeoutSeconds);
  if (c.sql !== undefined) {
    if (!Array.isArray(c.sql)) bad(file, `targets.${target}.checks.sql`, 'must be a list of { database?, query }');
    out.sql = c.sql.map((q, i) => {
      const o = q as Record<string, unknown>;
      if (typeof o?.query !== 'string') bad(file, `targets.${target}.checks.sql[${i}].query`, 'must be a SQL string');
      return { query: o.query, ...(typeof o.database === 'string' ? { database: o.database } : {}) };
    });
  }
  return out;
}
