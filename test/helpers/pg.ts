import { Client } from 'pg';
import { resolveSecret, type Config } from '../../src/config';

/** A direct connection to the stack's Postgres, for arranging and inspecting test data. */
export async function pg<T>(config: Config, database: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const s = config.targets.get('app-pg')!.settings as { host: string; port: number; user: string; password: { file: string } };
  const c = new Client({ host: s.host, port: s.port, user: s.user, password: await resolveSecret(s.password, 'pg password'), database });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createDatabase(config: Config, name: string): Promise<void> {
  await pg(config, 'postgres', async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`);
  });
}

export async function dropDatabase(config: Config, name: string): Promise<void> {
  await pg(config, 'postgres', (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
}

export async function databaseExists(config: Config, name: string): Promise<boolean> {
  return pg(config, 'postgres', async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
}

/** A small application-like schema: rows that must survive a restore. */
export async function seedApp(config: Config, database: string, rows = 500): Promise<void> {
  await pg(config, database, async (c) => {
    await c.query('CREATE TABLE IF NOT EXISTS tenants (id serial PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now())');
    await c.query("INSERT INTO tenants (name) SELECT 'tenant-' || g FROM generate_series(1, $1::int) g", [rows]);
  });
}

export async function countRows(config: Config, database: string, table = 'tenants'): Promise<number> {
  return pg(config, database, async (c) => Number((await c.query(`SELECT count(*)::int AS n FROM ${c.escapeIdentifier(table)}`)).rows[0].n));
}

/**
 * Holds an ACCESS EXCLUSIVE lock on `table` in a session of its own, so a
 * pg_dump of it waits (and stays running) until `release()` is called.
 */
export async function holdTableLock(config: Config, database: string, table: string): Promise<{ release(): Promise<void> }> {
  let release = () => undefined as void;
  const released = new Promise<void>((r) => (release = r));
  let locked = () => undefined as void;
  const holding = new Promise<void>((r) => (locked = r));
  const session = pg(config, database, async (c) => {
    await c.query('BEGIN');
    await c.query(`LOCK TABLE ${c.escapeIdentifier(table)} IN ACCESS EXCLUSIVE MODE`);
    locked();
    await released;
    await c.query('ROLLBACK');
  });
  await Promise.race([holding, session]);
  return {
    async release() {
      release();
      await session;
    },
  };
}
