import { Readable } from 'node:stream';
import { LifeboatError } from '../../errors';
import type { BackupItem, StoreContext } from '../types';
import { ClickhouseError, UNKNOWN_TABLE } from './errors';
import type { ClickhouseHttp } from './http';
import { nativeCheck } from './native-format';
import { layoutOf } from './native-types';
import { parseSchemaDoc, schemaDoc, type SchemaDoc, type SchemaObject, type TableRow } from './schema';
import { qualified, quoteIdent, quoteString, rewriteCreate, STREAMING_ENGINES } from './sql';

const PROGRESS_EVERY_BYTES = 8 * 1024 * 1024;

const CREATE_GUARDS = [
  'allow_experimental_low_cardinality_type',
  'allow_suspicious_low_cardinality_types',
  'allow_suspicious_fixed_string_types',
  'allow_suspicious_codecs',
  'allow_experimental_codecs',
  'allow_experimental_object_type',
  'allow_experimental_variant_type',
  'allow_experimental_dynamic_type',
  'allow_experimental_json_type',
  'allow_suspicious_variant_types',
];

interface TableMeta {
  database: string;
  table: string;
  engine?: string;
  /** For a materialized view's implicit table: the view, whose table is found by name at restore time. */
  owner?: string;
}

function metaOf(item: BackupItem): Record<string, unknown> {
  const m = item.meta;
  if (!m || typeof m.database !== 'string') throw new LifeboatError('ManifestInvalid', `item ${item.item} has no database in its manifest meta; it was not made by this lifeboat`);
  return m;
}

/**
 * The logical strategy: a schema document per database and one Native stream
 * per table, through the HTTP interface. Works on every server version,
 * 18.16 included.
 */
export class LogicalStrategy {
  constructor(private readonly http: ClickhouseHttp) {}

  async tables(ctx: StoreContext, database: string): Promise<TableRow[]> {
    // SELECT *: `uuid` exists only on newer servers; 18.16 has name, engine and create_table_query.
    const rows = await this.http.rows<TableRow & { is_temporary?: number }>({
      sql: `SELECT * FROM system.tables WHERE database = ${quoteString(database)} ORDER BY name`,
      what: `listing the tables of database ${database}`,
      signal: ctx.signal,
    });
    return rows.filter((r) => !r.is_temporary).map((r) => ({ name: r.name, engine: r.engine, create_table_query: r.create_table_query, uuid: r.uuid }));
  }

  async schema(ctx: StoreContext, database: string, serverVersion: string): Promise<SchemaDoc> {
    return schemaDoc(database, serverVersion, await this.tables(ctx, database));
  }

  async backupSchema(ctx: StoreContext, item: BackupItem, serverVersion: string, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    const database = metaOf(item).database as string;
    ctx.progress({ stage: 'schema', item: item.item });
    const doc = await this.schema(ctx, database, serverVersion);
    await sink(Readable.from([Buffer.from(`${JSON.stringify(doc, null, 2)}\n`)]));
  }

  /**
   * `SELECT * … FORMAT Native`, streamed to the sink while a validator follows
   * the block structure, so an error the server appends after its 200 fails
   * the stream instead of being stored as data. For columns whose layout the
   * validator cannot follow (e.g. AggregateFunction states) the server is
   * asked to buffer the whole result first (wait_end_of_query=1, spilling to
   * its tmp_path), so that an error still arrives as an HTTP error.
   */
  async backupTable(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void> {
    const m = metaOf(item) as unknown as TableMeta;
    const what = `backing up table ${m.database}.${m.table}`;
    const columns = await this.http.rows<{ name: string; type: string }>({
      sql: `SELECT name, type FROM system.columns WHERE database = ${quoteString(m.database)} AND table = ${quoteString(m.table)}`,
      what,
      signal: ctx.signal,
    });
    if (columns.length === 0) {
      throw new ClickhouseError('TableNotFound', `${this.http.where()}: table ${m.database}.${m.table} is gone (dropped or renamed since the backup started); run the backup again`, UNKNOWN_TABLE, true);
    }
    const opaque = columns.filter((c) => !layoutOf(c.type));
    if (opaque.length) {
      ctx.log.warn('table has columns whose Native layout lifeboat cannot follow: the server buffers the whole result before sending it', { table: `${m.database}.${m.table}`, columns: opaque.map((c) => `${c.name} ${c.type}`) });
    }
    ctx.progress({ stage: 'dump', item: item.item, bytes: 0 });
    const res = await this.http.open({ sql: `SELECT * FROM ${qualified(m.database, m.table)} FORMAT Native`, what, signal: ctx.signal, settings: opaque.length ? { wait_end_of_query: 1 } : {} });
    let reported = 0;
    const check = nativeCheck(`${this.http.where()}: ${what}`, {
      follow: opaque.length === 0,
      onBytes: (bytes) => {
        if (bytes - reported < PROGRESS_EVERY_BYTES) return;
        reported = bytes;
        ctx.progress({ stage: 'dump', item: item.item, bytes });
      },
    });
    res.on('error', (err) => check.destroy(this.http.transportError(err, { what, signal: ctx.signal }) as Error));
    res.pipe(check);
    try {
      await sink(check);
    } finally {
      res.destroy();
      check.destroy();
    }
  }

  /** `schema:<db>`: replaces `into` with an empty database holding the tables; `views:<db>`: (re)creates the views. */
  async restoreSchema(ctx: StoreContext, item: BackupItem, into: string, source: Readable): Promise<void> {
    const meta = metaOf(item);
    const doc = parseSchemaDoc(await readSmall(source), `artifact ${item.file}`);
    const from = doc.database;
    const copy = into !== from;
    const skipped = new Set(copy ? doc.objects.filter((o) => STREAMING_ENGINES.has(o.engine)).map((o) => o.name) : []);
    // …and the views that read from those, transitively.
    for (let grew = true; grew; ) {
      grew = false;
      for (const o of doc.objects) {
        if (!skipped.has(o.name) && (o.dependsOn ?? []).some((d) => skipped.has(d))) {
          skipped.add(o.name);
          grew = true;
        }
      }
    }
    for (const name of skipped) ctx.log.warn('not recreated in a copy under another name: it would consume the original stream', { table: `${from}.${name}`, into });
    if ((meta.phase ?? (item.item.startsWith('views:') ? 'views' : 'tables')) === 'tables') {
      ctx.progress({ stage: 'drop', item: into });
      await this.http.exec({ sql: `DROP DATABASE IF EXISTS ${quoteIdent(into)}`, what: `dropping database ${into}`, signal: ctx.signal });
      await this.http.exec({ sql: `CREATE DATABASE ${quoteIdent(into)}`, what: `creating database ${into}`, signal: ctx.signal });
      ctx.progress({ stage: 'schema', item: item.item });
      await this.createAll(ctx, doc, into, doc.objects.filter((o) => o.kind === 'table' && !skipped.has(o.name)), false);
    } else {
      ctx.progress({ stage: 'views', item: item.item });
      const views = doc.objects.filter((o) => o.kind === 'view' && !skipped.has(o.name));
      await this.createAll(ctx, doc, into, views, true);
    }
  }

  /**
   * Creates objects in document order. One that names an object not created
   * yet (a dependency lifeboat did not see, e.g. through dictGet) is retried
   * after the others, until a round makes no progress.
   */
  private async createAll(ctx: StoreContext, doc: SchemaDoc, into: string, objects: SchemaObject[], replace: boolean): Promise<void> {
    const settings = await this.createSettings(ctx);
    let pending = objects;
    while (pending.length) {
      const failed: Array<{ o: SchemaObject; err: unknown }> = [];
      for (const o of pending) {
        const sql = rewriteCreate(o.create, { from: doc.database, to: into, name: o.name, dereplicate: into !== doc.database });
        const what = `creating ${doc.database}.${o.name} as ${into}.${o.name}`;
        try {
          if (replace) await this.http.exec({ sql: `DROP TABLE IF EXISTS ${qualified(into, o.name)}`, what, signal: ctx.signal });
          await this.http.exec({ sql, what, signal: ctx.signal, settings });
        } catch (err) {
          if (!(err instanceof ClickhouseError) || err.code !== UNKNOWN_TABLE) throw err;
          failed.push({ o, err });
        }
      }
      if (failed.length === pending.length) throw failed[0]!.err;
      pending = failed.map((f) => f.o);
    }
  }

  /**
   * Guards a server puts on creating tables with experimental or "suspicious"
   * types protect new designs; a restore recreates tables that already
   * existed, so it lifts the ones this server knows (18.16, for instance,
   * needs allow_experimental_low_cardinality_type for LowCardinality columns).
   */
  private async createSettings(ctx: StoreContext): Promise<Record<string, number>> {
    const known = await this.http.rows<{ name: string }>({
      sql: `SELECT name FROM system.settings WHERE name IN (${CREATE_GUARDS.map(quoteString).join(', ')})`,
      what: 'reading the server settings',
      signal: ctx.signal,
    });
    return Object.fromEntries(known.map((k) => [k.name, 1]));
  }

  /** Empties the table (a retry starts clean) and streams the rows back with INSERT … FORMAT Native. */
  async restoreTable(ctx: StoreContext, item: BackupItem, into: string, source: Readable): Promise<void> {
    const m = metaOf(item) as unknown as TableMeta;
    const table = m.owner !== undefined ? await this.innerTable(ctx, into, m) : m.table;
    const what = `restoring ${m.database}.${m.table} into ${into}.${table}`;
    ctx.progress({ stage: 'restore', item: item.item });
    await this.http.exec({ sql: `TRUNCATE TABLE ${qualified(into, table)}`, what, signal: ctx.signal });
    await this.http.exec({ sql: `INSERT INTO ${qualified(into, table)} FORMAT Native`, body: source, what, signal: ctx.signal });
  }

  /** A materialized view's implicit table in `into`: `.inner.<view>`, or `.inner_id.<uuid>` in Atomic databases. */
  private async innerTable(ctx: StoreContext, into: string, m: TableMeta): Promise<string> {
    const rows = await this.tables(ctx, into);
    const view = rows.find((r) => r.name === m.owner);
    const inner = rows.find((r) => r.name === `.inner.${m.owner}` || (view?.uuid && r.name === `.inner_id.${view.uuid}`));
    if (!inner) {
      throw new ClickhouseError('TableNotFound', `${this.http.where()}: materialized view ${into}.${m.owner} has no implicit table to restore ${m.database}.${m.table} into; restore the views:${m.database} item first`, UNKNOWN_TABLE, true);
    }
    return inner.name;
  }
}

async function readSmall(source: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of source as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > 64 * 1024 * 1024) throw new LifeboatError('ManifestInvalid', 'a schema document larger than 64 MiB: this is not a lifeboat schema artifact');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}
