/**
 * ClickHouse type names -> how their values are laid out in the Native format,
 * as far as following a stream without decoding it needs.
 */

/**
 * How a column's values are laid out in ClickHouse's Native format, as far as
 * skipping over them needs: fixed-width values, length-prefixed strings, a
 * null map before the values, array offsets (UInt64, cumulative) before the
 * elements, tuples as their elements one after another, and LowCardinality
 * as a per-column version prefix, then per block its own dictionary and indexes.
 */
export type Layout =
  | { k: 'fixed'; size: number }
  | { k: 'string' }
  | { k: 'nullable'; inner: Layout }
  | { k: 'array'; inner: Layout }
  | { k: 'tuple'; items: Layout[] }
  | { k: 'lowcard'; dict: Layout };

const FIXED: Record<string, number> = {
  UInt8: 1, Int8: 1, Bool: 1, Enum8: 1,
  UInt16: 2, Int16: 2, Date: 2, Enum16: 2, BFloat16: 2,
  UInt32: 4, Int32: 4, Float32: 4, DateTime: 4, Date32: 4, IPv4: 4, Decimal32: 4, Time: 4,
  UInt64: 8, Int64: 8, Float64: 8, DateTime64: 8, Decimal64: 8, Time64: 8,
  UInt128: 16, Int128: 16, UUID: 16, IPv6: 16, Decimal128: 16,
  UInt256: 32, Int256: 32, Decimal256: 32,
};

const POINT: Layout = { k: 'tuple', items: [{ k: 'fixed', size: 8 }, { k: 'fixed', size: 8 }] };
const GEO: Record<string, Layout> = {
  Point: POINT,
  Ring: { k: 'array', inner: POINT },
  LineString: { k: 'array', inner: POINT },
};
GEO.Polygon = { k: 'array', inner: GEO.Ring! };
GEO.MultiLineString = { k: 'array', inner: GEO.LineString! };
GEO.MultiPolygon = { k: 'array', inner: GEO.Polygon! };

/** Splits `a, b(c, d), 'e,f'` at its top-level commas. */
export function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = '';
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === '\\') {
        cur += c + (s[++i] ?? '');
        continue;
      }
      if (c === quote) quote = '';
    } else if (c === "'" || c === '`' || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/**
 * The layout of a type name as the Native format spells it, or undefined for
 * types whose bytes cannot be skipped without the server's code
 * (AggregateFunction states, Object, Variant, Dynamic, Nothing…).
 */
export function layoutOf(type: string): Layout | undefined {
  const t = type.trim();
  const m = /^(\w+)\s*(?:\(([\s\S]*)\))?$/.exec(t);
  if (!m) {
    // A named tuple element: `name Type`.
    const named = /^(?:`(?:[^`\\]|\\.)*`|[A-Za-z_][\w]*)\s+([\s\S]+)$/.exec(t);
    return named ? layoutOf(named[1]!) : undefined;
  }
  const name = m[1]!;
  const args = m[2] === undefined ? [] : splitArgs(m[2]);
  const one = (s: string | undefined) => (s === undefined ? undefined : layoutOf(s));
  if (name in FIXED && name !== 'Decimal') return { k: 'fixed', size: FIXED[name]! };
  if (name.startsWith('Interval')) return { k: 'fixed', size: 8 };
  if (name in GEO && args.length === 0) return GEO[name];
  switch (name) {
    case 'String':
      return { k: 'string' };
    case 'FixedString': {
      const n = Number(args[0]);
      return Number.isInteger(n) && n > 0 ? { k: 'fixed', size: n } : undefined;
    }
    case 'Decimal': {
      const p = Number(args[0]);
      if (!Number.isInteger(p) || p < 1) return undefined;
      return { k: 'fixed', size: p <= 9 ? 4 : p <= 18 ? 8 : p <= 38 ? 16 : 32 };
    }
    case 'Nullable': {
      const inner = one(args[0]);
      return inner && { k: 'nullable', inner };
    }
    case 'Array': {
      const inner = one(args[0]);
      return inner && { k: 'array', inner };
    }
    case 'Tuple':
    case 'Nested': {
      const items = args.map((a) => one(a));
      if (items.length === 0 || items.some((i) => i === undefined)) return undefined;
      const tuple: Layout = { k: 'tuple', items: items as Layout[] };
      return name === 'Nested' ? { k: 'array', inner: tuple } : tuple;
    }
    case 'Map': {
      const [key, value] = [one(args[0]), one(args[1])];
      return key && value && { k: 'array', inner: { k: 'tuple', items: [key, value] } };
    }
    case 'SimpleAggregateFunction':
      return one(args[args.length - 1]);
    case 'LowCardinality': {
      // The dictionary of LowCardinality(Nullable(T)) holds plain T values (index 0 stands for NULL).
      const inner = args[0] === undefined ? undefined : one(args[0].replace(/^Nullable\s*\(([\s\S]*)\)$/, '$1'));
      return inner && { k: 'lowcard', dict: inner };
    }
    default:
      return undefined;
  }
}

/** How many LowCardinality columns a layout contains: each writes an 8-byte version before the column's data. */
export function lowCardinalities(l: Layout): number {
  switch (l.k) {
    case 'lowcard':
      return 1;
    case 'nullable':
    case 'array':
      return lowCardinalities(l.inner);
    case 'tuple':
      return l.items.reduce((n, i) => n + lowCardinalities(i), 0);
    default:
      return 0;
  }
}
