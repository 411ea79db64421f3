import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from '@falcon/shared';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

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

/**
 * Brings the schema up to date. node-pg-migrate holds an advisory lock while it runs and
 * `wait` makes a second migrator queue behind the first instead of failing, so an accidental
 * parallel run is harmless; the chart still runs it once, as a hook Job.
 */
export async function runMigrations(databaseUrl: string, log: Logger): Promise<string[]> {
  await ensureDatabase(databaseUrl, log);
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
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
