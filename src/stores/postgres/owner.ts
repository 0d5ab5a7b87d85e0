import type { Client } from 'pg';

/**
 * Every object of the current database that `from` owns and that no extension
 * owns, as `ALTER … OWNER TO` statements for `to`. What a restore with
 * `owner` runs after `pg_restore --no-owner`, so the application role owns
 * what it uses. REASSIGN OWNED is not an option: it also hands over every
 * database and tablespace `from` owns elsewhere on the server.
 */
const OWNED = `
WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
SELECT format('ALTER %s %s OWNER TO %I', kind, name, $2::text) AS sql FROM (
  SELECT 1 AS ord, 'SCHEMA' AS kind, format('%I', n.nspname) AS name FROM pg_namespace n
    WHERE n.nspowner = $1::regrole AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_namespace'::regclass AND objid = n.oid)
  UNION ALL
  SELECT 2, CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
         format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = $1::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      -- a sequence that belongs to a column follows its table
      AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
      AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid)
  UNION ALL
  SELECT 3, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
         format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proowner = $1::regrole AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_proc'::regclass AND objid = p.oid)
  UNION ALL
  SELECT 4, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, format('%I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typowner = $1::regrole AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND t.typtype IN ('e', 'd', 'r', 'm', 'c') AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
      AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_type'::regclass AND objid = t.oid)
  UNION ALL
  SELECT 5, 'LARGE OBJECT', m.oid::text FROM pg_largeobject_metadata m WHERE m.lomowner = $1::regrole
) o ORDER BY ord, name`;

/** Hands every object `from` owns in the connected database to `to`, in one transaction. Idempotent. */
export async function reassignRestored(c: Client, from: string, to: string): Promise<number> {
  if (from === to) return 0;
  const { rows } = await c.query<{ sql: string }>(OWNED, [from, to]);
  await c.query('BEGIN');
  try {
    for (const r of rows) await c.query(r.sql);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  }
  return rows.length;
}
