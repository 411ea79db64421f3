import pg from 'pg';
import type { Logger } from 'pino';
import { retry } from './retry.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface PoolOptions {
  url: string;
  max: number;
  applicationName: string;
  log: Logger;
  /** Per-statement limit, so a stuck query turns into an error instead of a hung request. */
  statementTimeoutMs?: number;
}

// int8 (bigint) as a JS number: seqs stay far below 2^53 (JetStream's own sequences are uint64,
// but 9e15 messages is centuries at a million a second).
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

/** A pool that survives a database outage: errors on idle clients are logged, never thrown. */
export function createPool(options: PoolOptions): Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    application_name: options.applicationName,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMs ?? 30_000,
    keepAlive: true,
  });
  pool.on('error', (err) => options.log.warn({ err }, 'idle postgres client failed'));
  return pool;
}

/**
 * A client checked out of the pool for work a single pool.query cannot do (COPY, a
 * transaction). While checked out, a connection error is emitted on the client itself, and
 * an 'error' with no listener would take the whole process down; the work in progress
 * rejects with the same error, so the listener only has to exist.
 */
export async function checkout(pool: Pool): Promise<PoolClient> {
  const client = await pool.connect();
  if (client.listenerCount('error') === 0) client.on('error', () => undefined);
  return client;
}

/** Class 08 (connection), 53 (resources), 57 (operator intervention) and 40 (rollbacks) pass. */
const TRANSIENT_SQLSTATE = /^(08|53|57|40|58)/;

/**
 * Whether retrying the same statement later can succeed. Errors without a SQLSTATE are
 * network or pool errors (refused, reset, timeout), which pass too.
 */
export function isTransientDbError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true;
  return TRANSIENT_SQLSTATE.test(code);
}

/**
 * Whether the error says the database as a whole is out of reach (no SQLSTATE: refused, reset,
 * timed out; class 08 connection; 53 insufficient resources; 57P01-57P03 shutting down or not
 * accepting connections; 58 system errors), as opposed to one statement failing (a deadlock, a
 * serialization failure, a statement timeout), which says something about what it was given.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true;
  return /^(08|53|58|57P0[1-3])/.test(code);
}

/** Whether the database answers within `timeoutMs` (for /readyz, which must answer fast). */
export async function pingDb(pool: Pool, timeoutMs = 1_000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const ping = pool.query('SELECT 1').then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([ping, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** host:port/database of a connection string, without credentials, for logs. */
export function databaseTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return 'unparseable DATABASE_URL';
  }
}

/**
 * Waits until the database answers, logging where it connects and each failed attempt; the
 * pool itself connects lazily, so without this a service would look ready with no database.
 */
export async function waitForDatabase(pool: Pool, url: string, log: Logger, signal?: AbortSignal): Promise<void> {
  const target = databaseTarget(url);
  log.info({ database: target }, 'connecting to postgres');
  await retry(() => pool.query('SELECT 1'), {
    initialMs: 250,
    maxMs: 5_000,
    signal,
    onFailure: (err, attempt, retryInMs) => log.warn({ err, database: target, attempt, retryInMs }, 'postgres connection failed'),
  });
  log.info({ database: target }, 'postgres connected');
}
