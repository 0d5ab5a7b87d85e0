import { createHash } from 'node:crypto';
import { validateName } from '../../domain/names';
import { LifeboatError } from '../../errors';
import type { BackupItem } from '../types';
import { referencedTables } from './sql';

/** A row of system.tables, as far as lifeboat reads it (`uuid` only on servers that have it). */
export interface TableRow {
  name: string;
  engine: string;
  create_table_query: string;
  uuid?: string;
}

export type ObjectKind = 'table' | 'view' | 'inner';

export interface SchemaObject {
  name: string;
  engine: string;
  kind: ObjectKind;
  /** `CREATE …` as the server reports it (database-qualified). */
  create: string;
  /** Whether the object has a data item (tables of engines that store rows). */
  data: boolean;
  /** For a view: tables and views of the same database it reads or writes. */
  dependsOn?: string[];
  /** For a materialized view's implicit table: the view. */
  owner?: string;
}

/** The document of a `schema:<db>` / `views:<db>` item (format `clickhouse-schema`). */
export interface SchemaDoc {
  format: 'lifeboat-clickhouse-schema';
  version: 1;
  database: string;
  serverVersion: string;
  /** Tables (by name), then views in dependency order, then materialized views' implicit tables. */
  objects: SchemaObject[];
}

/** Engines whose rows live in the table itself; everything else (views, Buffer, Merge, Distributed, Kafka…) has no data item. */
export function storesRows(engine: string): boolean {
  return /MergeTree$/.test(engine) || ['Log', 'TinyLog', 'StripeLog', 'Memory'].includes(engine);
}

const isView = (engine: string) => /View$/.test(engine);

/** `.inner.<mv>` (Ordinary databases) or `.inner_id.<uuid>` (Atomic ones). */
function innerOwner(row: TableRow, rows: TableRow[]): string | undefined {
  if (row.name.startsWith('.inner.')) return row.name.slice('.inner.'.length);
  if (row.name.startsWith('.inner_id.')) {
    const uuid = row.name.slice('.inner_id.'.length);
    return rows.find((r) => r.uuid === uuid && isView(r.engine))?.name ?? '';
  }
  return undefined;
}

/** Views ordered so that each comes after the views it reads from (ties by name). */
function orderViews(views: SchemaObject[]): SchemaObject[] {
  const byName = new Map(views.map((v) => [v.name, v]));
  const done = new Set<string>();
  const out: SchemaObject[] = [];
  const visit = (v: SchemaObject, path: Set<string>) => {
    if (done.has(v.name) || path.has(v.name)) return;
    path.add(v.name);
    for (const d of v.dependsOn ?? []) {
      const dep = byName.get(d);
      if (dep) visit(dep, path);
    }
    done.add(v.name);
    out.push(v);
  };
  for (const v of [...views].sort((a, b) => a.name.localeCompare(b.name))) visit(v, new Set());
  return out;
}

export function schemaDoc(database: string, serverVersion: string, rows: TableRow[]): SchemaDoc {
  const tables: SchemaObject[] = [];
  const views: SchemaObject[] = [];
  const inner: SchemaObject[] = [];
  for (const r of rows) {
    const owner = innerOwner(r, rows);
    if (owner !== undefined) {
      inner.push({ name: r.name, engine: r.engine, kind: 'inner', create: r.create_table_query, data: storesRows(r.engine), owner });
    } else if (isView(r.engine)) {
      views.push({ name: r.name, engine: r.engine, kind: 'view', create: r.create_table_query, data: false, dependsOn: referencedTables(r.create_table_query, database, r.name) });
    } else {
      tables.push({ name: r.name, engine: r.engine, kind: 'table', create: r.create_table_query, data: storesRows(r.engine) });
    }
  }
  const byName = (a: SchemaObject, b: SchemaObject) => a.name.localeCompare(b.name);
  return { format: 'lifeboat-clickhouse-schema', version: 1, database, serverVersion, objects: [...tables.sort(byName), ...orderViews(views), ...inner.sort(byName)] };
}

export function parseSchemaDoc(text: string, where: string): SchemaDoc {
  let doc: SchemaDoc;
  try {
    doc = JSON.parse(text) as SchemaDoc;
  } catch (err) {
    throw new LifeboatError('ManifestInvalid', `${where} is not a lifeboat ClickHouse schema document (${(err as Error).message})`);
  }
  if (doc?.format !== 'lifeboat-clickhouse-schema' || doc.version !== 1 || !Array.isArray(doc.objects)) {
    throw new LifeboatError('ManifestInvalid', `${where} is not a version 1 lifeboat ClickHouse schema document; upgrade lifeboat to read it`);
  }
  return doc;
}

function safe(name: string): boolean {
  try {
    validateName('file', name);
    return true;
  } catch {
    return false;
  }
}

/**
 * Artifact file names: `<db>.<table>.native` when that is a valid name, else
 * a readable prefix and a hash of the real names (`<db>.t-1a2b3c4d5e.native`).
 */
export function fileName(parts: string[], suffix: string): string {
  const plain = `${parts.join('.')}${suffix}`;
  if (safe(plain)) return plain;
  const hash = createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 10);
  const readable = parts.join('.').replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  const room = 63 - suffix.length - hash.length - 1;
  return `${readable.slice(0, room) || 't'}-${hash}${suffix}`;
}

/** Items of a database for the logical strategy, in restore order. */
export function logicalItems(database: string, doc: SchemaDoc): BackupItem[] {
  const schema = (phase: 'tables' | 'views'): BackupItem => ({
    item: `${phase === 'tables' ? 'schema' : 'views'}:${database}`,
    name: database,
    file: fileName([database], phase === 'tables' ? '.schema.json' : '.views.json'),
    format: 'clickhouse-schema',
    meta: { database, phase },
  });
  const table = (o: SchemaObject): BackupItem => ({
    item: `table:${database}.${o.name}`,
    name: database,
    file: fileName([database, o.name], '.native'),
    format: 'clickhouse-native',
    meta: { database, table: o.name, engine: o.engine, ...(o.owner !== undefined ? { owner: o.owner } : {}) },
  });
  const data = (kind: ObjectKind) => doc.objects.filter((o) => o.kind === kind && o.data).map(table);
  return [schema('tables'), ...data('table'), schema('views'), ...data('inner')];
}

/** Makes file names unique across a target's items: colliding ones get hashed names. */
export function uniqueFiles(items: BackupItem[]): BackupItem[] {
  const count = new Map<string, number>();
  for (const i of items) count.set(i.file, (count.get(i.file) ?? 0) + 1);
  return items.map((i) => {
    if (count.get(i.file) === 1) return i;
    const m = /^(.*?)(\.schema\.json|\.views\.json|\.native)$/.exec(i.file);
    const suffix = m?.[2] ?? '';
    const hash = createHash('sha256').update(i.item).digest('hex').slice(0, 10);
    return { ...i, file: `${(m?.[1] ?? i.file).replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 63 - suffix.length - 11)}-${hash}${suffix}` };
  });
}
