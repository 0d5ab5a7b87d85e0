import { LifeboatError } from '../../errors';

/**
 * The one place identifiers and literals become SQL text. ClickHouse reads
 * backslash escapes inside backquotes and single quotes in every version
 * (doubling the quote only in newer ones), so both are escaped that way.
 */
export function quoteIdent(name: string): string {
  return `\`${escape(name, '`')}\``;
}

export function quoteString(value: string): string {
  return `'${escape(value, "'")}'`;
}

function escape(s: string, quote: string): string {
  let out = '';
  for (const ch of s) {
    if (ch === '\\' || ch === quote) out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\0') out += '\\0';
    else out += ch;
  }
  return out;
}

/** `db`.`table` */
export function qualified(database: string, table: string): string {
  return `${quoteIdent(database)}.${quoteIdent(table)}`;
}

export interface Token {
  kind: 'space' | 'comment' | 'word' | 'ident' | 'string' | 'number' | 'punct';
  text: string;
  /** For words and quoted identifiers: the name; for strings: the value. */
  value: string;
}

const UNESCAPE: Record<string, string> = { n: '\n', r: '\r', t: '\t', '0': '\0', b: '\b', f: '\f', a: '\x07', v: '\v' };

function readQuoted(sql: string, start: number): { end: number; value: string } {
  const q = sql[start]!;
  let value = '';
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '\\' && i + 1 < sql.length) {
      const n = sql[i + 1]!;
      value += UNESCAPE[n] ?? n;
      i += 2;
    } else if (c === q) {
      if (sql[i + 1] === q) {
        value += q;
        i += 2;
      } else {
        return { end: i + 1, value };
      }
    } else {
      value += c;
      i++;
    }
  }
  throw new LifeboatError('SchemaParse', `unterminated ${q} quote in statement: ${sql.slice(0, 200)}`, true);
}

/** Splits SQL into tokens whose texts concatenate back to the input exactly. */
export function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    let end: number;
    let kind: Token['kind'];
    let value: string | undefined;
    if (/\s/.test(c)) {
      end = i + 1;
      while (end < sql.length && /\s/.test(sql[end]!)) end++;
      kind = 'space';
    } else if (c === '-' && sql[i + 1] === '-') {
      end = sql.indexOf('\n', i);
      end = end < 0 ? sql.length : end;
      kind = 'comment';
    } else if (c === '/' && sql[i + 1] === '*') {
      end = sql.indexOf('*/', i + 2);
      end = end < 0 ? sql.length : end + 2;
      kind = 'comment';
    } else if (c === "'" || c === '`' || c === '"') {
      const r = readQuoted(sql, i);
      end = r.end;
      value = r.value;
      kind = c === "'" ? 'string' : 'ident';
    } else if (/[A-Za-z_]/.test(c)) {
      end = i + 1;
      while (end < sql.length && /[A-Za-z0-9_$]/.test(sql[end]!)) end++;
      kind = 'word';
    } else if (/[0-9]/.test(c)) {
      end = i + 1;
      while (end < sql.length && /[A-Za-z0-9_.]/.test(sql[end]!)) end++;
      kind = 'number';
    } else {
      end = i + 1;
      kind = 'punct';
    }
    const text = sql.slice(i, end);
    out.push({ kind, text, value: value ?? text });
    i = end;
  }
  return out;
}

const isName = (t: Token | undefined): t is Token => t !== undefined && (t.kind === 'word' || t.kind === 'ident');
const isWord = (t: Token | undefined, ...words: string[]): boolean => t?.kind === 'word' && words.includes(t.value.toUpperCase());
const isPunct = (t: Token | undefined, p: string): boolean => t?.kind === 'punct' && t.value === p;

/** Keywords after which a `db.table` names a table a view reads or writes. */
const TABLE_CONTEXT = ['FROM', 'JOIN', 'IN', 'TO'];

/** Streaming engines: a copy of one would consume the production stream (same consumer group). */
export const STREAMING_ENGINES = new Set(['Kafka', 'RabbitMQ', 'NATS', 'S3Queue', 'AzureQueue', 'FileLog', 'RedisStreams']);

export interface Rewrite {
  /** The database the statement was recorded in. */
  from: string;
  /** The database to create it in. */
  to: string;
  /** The object's own name, checked against the statement's head. */
  name: string;
  /**
   * Replace Replicated*MergeTree by its non-replicated engine: a copy under
   * another name must not join the original's replication group (a TRUNCATE
   * there would replicate to production).
   */
  dereplicate?: boolean;
}

interface Head {
  /** Index in `sig` of the name token, and of the database token if the name is qualified. */
  db?: number;
  name: number;
}

function parseHead(sig: Token[], sql: string, expectName: string): Head {
  let i = 0;
  if (!isWord(sig[i++], 'CREATE', 'ATTACH')) throw schemaError(sql, 'it does not start with CREATE');
  if (isWord(sig[i], 'OR') && isWord(sig[i + 1], 'REPLACE')) i += 2;
  if (isWord(sig[i], 'MATERIALIZED', 'LIVE', 'WINDOW')) i++;
  if (!isWord(sig[i++], 'TABLE', 'VIEW', 'DICTIONARY')) throw schemaError(sql, 'it is not CREATE TABLE/VIEW/DICTIONARY');
  if (isWord(sig[i], 'IF') && isWord(sig[i + 1], 'NOT') && isWord(sig[i + 2], 'EXISTS')) i += 3;
  const head: Head = isName(sig[i]) && isPunct(sig[i + 1], '.') && isName(sig[i + 2]) ? { db: i, name: i + 2 } : { name: i };
  if (!isName(sig[head.name]) || sig[head.name]!.value !== expectName) throw schemaError(sql, `its head does not name the table ${JSON.stringify(expectName)}`);
  return head;
}

function schemaError(sql: string, why: string): LifeboatError {
  return new LifeboatError('SchemaParse', `cannot rewrite the recorded statement (${why}): ${sql.slice(0, 200)}`, true);
}

/**
 * Rewrites a recorded `CREATE …` for another database. Only these places
 * change, token by token (string literals and comments are never touched):
 * the `db.name` in the head; `db.x` after FROM, JOIN, IN and TO (a view's
 * sources, a materialized view's target); the database argument of the Buffer
 * and Merge engines; and, with `dereplicate`, a Replicated engine. Everything
 * else — dictGet('db.dict', …), Distributed(cluster, db, t), table functions —
 * keeps naming the original database.
 */
export function rewriteCreate(sql: string, r: Rewrite): string {
  const tokens = tokenize(sql);
  const sig = tokens.filter((t) => t.kind !== 'space' && t.kind !== 'comment');
  const head = parseHead(sig, sql, r.name);
  const to = quoteIdent(r.to);
  const replace = new Map<Token, string>();
  if (head.db !== undefined) {
    if (sig[head.db]!.value !== r.from) throw schemaError(sql, `its head names database ${JSON.stringify(sig[head.db]!.value)}, not ${JSON.stringify(r.from)}`);
    replace.set(sig[head.db]!, to);
  } else {
    replace.set(sig[head.name]!, `${to}.${sig[head.name]!.text}`);
  }
  for (let i = head.name + 1; i < sig.length; i++) {
    const t = sig[i]!;
    if (isWord(t, ...TABLE_CONTEXT) && isName(sig[i + 1]) && sig[i + 1]!.value === r.from && isPunct(sig[i + 2], '.') && isName(sig[i + 3])) {
      replace.set(sig[i + 1]!, to);
    } else if (isWord(t, 'ENGINE') && isPunct(sig[i + 1], '=') && isName(sig[i + 2])) {
      engineRewrite(sig, i + 2, r, replace);
    }
  }
  return tokens.map((t) => replace.get(t) ?? t.text).join('');
}

function engineRewrite(sig: Token[], at: number, r: Rewrite, replace: Map<Token, string>): void {
  const engine = sig[at]!;
  const open = isPunct(sig[at + 1], '(');
  const first = open ? sig[at + 2] : undefined;
  if ((engine.value === 'Buffer' || engine.value === 'Merge') && first && first.value === r.from && isPunct(sig[at + 3], ',')) {
    replace.set(first, first.kind === 'string' ? quoteString(r.to) : quoteIdent(r.to));
  }
  const m = /^Replicated(\w*MergeTree)$/.exec(engine.value);
  if (!r.dereplicate || !m) return;
  replace.set(engine, m[1]!);
  if (!open) return;
  // New-syntax Replicated engines take (zookeeper_path, replica_name, …the plain engine's arguments).
  const args = topLevelArgs(sig, at + 1);
  const drop = args.slice(0, 2).every((a) => a.length === 1 && a[0]!.kind === 'string') ? Math.min(2, args.length) : 0;
  const dropped = args.slice(0, drop).flat();
  for (const t of dropped) replace.set(t, '');
  // The comma after each dropped argument goes too.
  for (let k = 0; k < drop && k < args.length - 1; k++) {
    const last = args[k]![args[k]!.length - 1]!;
    const comma = sig[sig.indexOf(last) + 1];
    if (comma && isPunct(comma, ',')) replace.set(comma, '');
  }
}

/** The top-level arguments of the parenthesis opening at `sig[open]`, as token lists. */
function topLevelArgs(sig: Token[], open: number): Token[][] {
  const args: Token[][] = [];
  let cur: Token[] = [];
  let depth = 0;
  for (let i = open; i < sig.length; i++) {
    const t = sig[i]!;
    if (isPunct(t, '(') || isPunct(t, '[')) {
      if (depth++ === 0) continue;
    } else if (isPunct(t, ')') || isPunct(t, ']')) {
      if (--depth === 0) {
        if (cur.length) args.push(cur);
        return args;
      }
    } else if (depth === 1 && isPunct(t, ',')) {
      args.push(cur);
      cur = [];
      continue;
    }
    cur.push(t);
  }
  return args;
}

/** Tables of `database` a statement reads or writes (after FROM, JOIN, IN, TO), excluding its own name. */
export function referencedTables(sql: string, database: string, self: string): string[] {
  const sig = tokenize(sql).filter((t) => t.kind !== 'space' && t.kind !== 'comment');
  let start = 0;
  try {
    start = parseHead(sig, sql, self).name + 1;
  } catch {
    start = 0;
  }
  const found = new Set<string>();
  for (let i = start; i < sig.length; i++) {
    if (isWord(sig[i], ...TABLE_CONTEXT) && isName(sig[i + 1]) && sig[i + 1]!.value === database && isPunct(sig[i + 2], '.') && isName(sig[i + 3])) {
      found.add(sig[i + 3]!.value);
    }
  }
  found.delete(self);
  return [...found].sort();
}
