import pg from 'pg';
import { checkout, messagesTable, retry, type Logger, type Pool } from '@falcon/shared';

// messages is partitioned by received_at, one partition per UTC day, named messages_pYYYYMMDD,
// plus messages_default for rows whose day has no partition yet (see the migration).
const DAY_MS = 86_400_000;
const MESSAGES = messagesTable.name;
const DEFAULT_PARTITION = messagesTable.defaultPartition;
const RECEIVED_AT = messagesTable.columns.receivedAt;
const PARTITION_NAME = new RegExp(`^${messagesTable.partitionPrefix}(\\d{4})(\\d\\d)(\\d\\d)$`);

export interface Partition {
  name: string;
  /** First instant of the day (inclusive), as an ISO string. */
  from: string;
  /** First instant of the next day (exclusive). */
  to: string;
}

export function dayStart(at: Date): Date {
  return new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS);
}

export function partitionFor(at: Date): Partition {
  const start = dayStart(at);
  const iso = start.toISOString();
  return { name: `${messagesTable.partitionPrefix}${iso.slice(0, 10).replaceAll('-', '')}`, from: iso, to: new Date(start.getTime() + DAY_MS).toISOString() };
}

/** The day partition a name stands for, or undefined for any other table. */
export function parsePartitionName(name: string): Partition | undefined {
  const m = PARTITION_NAME.exec(name);
  return m ? partitionFor(new Date(`${m[1]}-${m[2]}-${m[3]}T00:00:00Z`)) : undefined;
}

/** The partitions (by name) whose whole day ended before `now - retentionDays`. */
export function expiredPartitions(names: string[], now: Date, retentionDays: number): string[] {
  const cutoff = now.getTime() - retentionDays * DAY_MS;
  return names.filter((name) => {
    const p = parsePartitionName(name);
    return p !== undefined && Date.parse(p.to) <= cutoff;
  });
}

export interface PartitionOptions {
  log: Logger;
  /**
   * How long a DDL statement waits for its lock. DROP and ATTACH queue behind a long export
   * and every later query queues behind them, so they give up fast and are retried instead.
   */
  lockTimeoutMs?: number;
  /** Attempts per statement that times out on its lock. */
  attempts?: number;
  /** Ends the waits between attempts (a stop). */
  signal?: AbortSignal;
}

const LOCK_NOT_AVAILABLE = '55P03';

async function withLockRetries<T>(pool: Pool, options: PartitionOptions, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const attempts = options.attempts ?? 5;
  let attempt = 0;
  return retry(
    async () => {
      attempt += 1;
      const client = await checkout(pool);
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.trunc(options.lockTimeoutMs ?? 2_000))}`);
        // One partition change at a time across persister replicas and the retention job, so two
        // of them never race to create the same day.
        await client.query(`SELECT pg_advisory_xact_lock(hashtext('falcon.${MESSAGES}.partitions'))`);
        const result = await work(client);
        await client.query('COMMIT');
        client.release();
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        // Any other failure may have broken the connection: destroy it rather than reuse it.
        client.release(isLockTimeout(err) ? undefined : err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    },
    {
      initialMs: 100,
      maxMs: 2_000,
      signal: options.signal,
      retryable: (err) => isLockTimeout(err) && attempt < attempts,
      onFailure: (_err, n) => options.log.info({ attempt: n }, 'partition change waited too long for its lock; retrying'),
    },
  );
}

const isLockTimeout = (err: unknown) => (err as { code?: string }).code === LOCK_NOT_AVAILABLE;

export async function listPartitions(pool: Pool): Promise<string[]> {
  const result = await pool.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i
       JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = '${MESSAGES}'::regclass ORDER BY c.relname`,
  );
  return result.rows.map((r) => r.name);
}

/**
 * Makes the day's partition if it does not exist. It is built as a plain table and then
 * attached, because ATTACH takes a lighter lock on messages than CREATE ... PARTITION OF
 * (writers and readers carry on), and because rows of that day already in messages_default
 * must move into it first or the attach fails. Returns whether it created the partition.
 */
export async function createPartition(pool: Pool, p: Partition, options: PartitionOptions): Promise<boolean> {
  return withLockRetries(pool, options, async (client) => {
    const exists = await client.query('SELECT 1 FROM pg_class WHERE relname = $1', [p.name]);
    if (exists.rowCount) return false;
    const table = pg.escapeIdentifier(p.name);
    const from = pg.escapeLiteral(p.from);
    const to = pg.escapeLiteral(p.to);
    await client.query(`CREATE TABLE ${table} (LIKE ${MESSAGES} INCLUDING DEFAULTS)`);
    // The CHECK lets ATTACH skip its validation scan of the new table.
    await client.query(`ALTER TABLE ${table} ADD CONSTRAINT ${pg.escapeIdentifier(`${p.name}_range`)} CHECK (${RECEIVED_AT} >= ${from} AND ${RECEIVED_AT} < ${to})`);
    const moved = await client.query(
      `WITH moved AS (DELETE FROM ${DEFAULT_PARTITION} WHERE ${RECEIVED_AT} >= ${from} AND ${RECEIVED_AT} < ${to} RETURNING *)
       INSERT INTO ${table} SELECT * FROM moved`,
    );
    await client.query(`ALTER TABLE ${MESSAGES} ATTACH PARTITION ${table} FOR VALUES FROM (${from}) TO (${to})`);
    await client.query(`ALTER TABLE ${table} DROP CONSTRAINT ${pg.escapeIdentifier(`${p.name}_range`)}`);
    options.log.info({ partition: p.name, movedFromDefault: moved.rowCount ?? 0 }, 'partition created');
    return true;
  });
}

/**
 * The current and next day's partitions, and one for every day that has rows waiting in
 * messages_default, so the default stays empty and every row can later be dropped with its day.
 */
export async function ensurePartitions(pool: Pool, now: Date, options: PartitionOptions): Promise<string[]> {
  const waiting = await pool.query<{ day: Date }>(`SELECT DISTINCT date_trunc('day', ${RECEIVED_AT} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day FROM ${DEFAULT_PARTITION}`);
  const days = [now, new Date(now.getTime() + DAY_MS), ...waiting.rows.map((r) => r.day)];
  const created: string[] = [];
  for (const day of days) {
    const p = partitionFor(day);
    if (await createPartition(pool, p, options)) created.push(p.name);
  }
  return created;
}

/**
 * Drops every day partition that ended more than `retentionDays` ago, each in its own
 * transaction: a reader sees a day either whole or not at all, never part of it. Rows in
 * messages_default are not touched here; ensurePartitions moves them into their day first.
 */
export async function dropExpiredPartitions(pool: Pool, now: Date, retentionDays: number, options: PartitionOptions): Promise<string[]> {
  const expired = expiredPartitions(await listPartitions(pool), now, retentionDays);
  for (const name of expired) {
    await withLockRetries(pool, options, async (client) => {
      await client.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(name)}`);
    });
    options.log.info({ partition: name }, 'expired partition dropped');
  }
  return expired;
}
