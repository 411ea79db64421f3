import pg from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from 'pino';

/** Postgres refuses CREATE DATABASE inside a transaction and has no IF NOT EXISTS for it. */
export async function ensureDatabase(databaseUrl: string, log: Logger): Promise<void> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!name) return;
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created concurrently
      });
      log.info({ database: name }, 'database created');
    }
  } finally {
    await client.end();
  }
}

export interface MigrationOptions {
  databaseUrl: string;
  /** The folder of node-pg-migrate migrations (the persister's, which owns the schema). */
  dir: string;
  log: Logger;
}

/**
 * Brings the schema up to date. node-pg-migrate holds an advisory lock while it runs and
 * `wait` makes a second migrator queue behind the first instead of failing, so an accidental
 * parallel run is harmless; the chart still runs it once, as a hook Job.
 */
export async function migrateDatabase(options: MigrationOptions): Promise<string[]> {
  const { databaseUrl, dir, log } = options;
  await ensureDatabase(databaseUrl, log);
  const applied = await runner({
    databaseUrl,
    dir,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    advisoryLockMode: 'wait',
    log: (msg: string) => log.debug({ migrate: msg }, 'migration log'),
  });
  const names = applied.map((m) => m.name);
  log.info({ applied: names }, names.length ? 'migrations applied' : 'schema up to date');
  return names;
}
