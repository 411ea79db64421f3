/**
 * Retention at a size this machine holds: `node --import tsx bench/retention.ts --rows 2000000`.
 * Fills the old unpartitioned schema with `rows` messages over `days` days, times the migration
 * to day partitions, then times expiring the oldest days by DROP (partitioned) against DELETE
 * plus the VACUUM it needs (the same rows in the old schema). Prints one JSON line per figure.
 */
import { parseArgs } from 'node:util';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import { createSilentLogger } from '@falcon/shared';
import { MIGRATIONS_DIR, runMigrations } from '../services/persister/src/migrate.js';
import { dropExpiredPartitions, partitionFor } from '../services/persister/src/partitions.js';
import { emptyDatabase, quietPool } from '../test-support/infra.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '2000000' }, days: { type: 'string', default: '10' }, expire: { type: 'string', default: '2' } } });
const ROWS = Number(values.rows);
const DAYS = Number(values.days);
const EXPIRE = Number(values.expire);
const DAY = 86_400_000;
const log = createSilentLogger();
const today = new Date(Math.floor(Date.now() / DAY) * DAY);
const firstDay = new Date(today.getTime() - (DAYS - 1) * DAY);

const report = (name: string, seconds: number, extra: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ name, seconds: Number(seconds.toFixed(3)), rows: ROWS, days: DAYS, ...extra })}\n`);

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const result = await work();
  return [result, Number(process.hrtime.bigint() - start) / 1e9];
}

/** The old schema (first migration only), filled with ROWS messages spread evenly over DAYS days. */
async function oldSchemaFilled(): Promise<{ url: string; pool: pg.Pool; cleanup(): Promise<void> }> {
  const db = await emptyDatabase();
  await runner({ databaseUrl: db.url, dir: MIGRATIONS_DIR, direction: 'up', count: 1, migrationsTable: 'pgmigrations', log: () => {} });
  const pool = quietPool(db.url, 2);
  const [, seconds] = await timed(() =>
    pool.query(
      `INSERT INTO messages (seq, id, received_at, payload)
       SELECT i, gen_random_uuid(), $1::timestamptz + (i::float8 / $2 * $3) * interval '1 day',
              json_build_object('t', i, 'text', 'benchmark message', 'user', 'ada', 'pad', repeat('x', 64))::json
         FROM generate_series(1, $2::bigint) AS i`,
      [firstDay.toISOString(), ROWS, DAYS],
    ),
  );
  await pool.query('VACUUM ANALYZE messages');
  report('fill old schema', seconds);
  return { url: db.url, pool, cleanup: async () => (await pool.end(), await db.cleanup()) };
}

const size = async (pool: pg.Pool) => (await pool.query(`SELECT pg_size_pretty(pg_total_relation_size('messages')) AS s`)).rows[0].s as string;
const partitionedSize = async (pool: pg.Pool) =>
  (await pool.query(`SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) AS s FROM pg_inherits WHERE inhparent = 'messages'::regclass`)).rows[0].s as string;

// The cutoff that expires exactly the EXPIRE oldest days.
const now = new Date(firstDay.getTime() + (EXPIRE + 1) * DAY);
const retentionDays = 1;
const cutoff = partitionFor(new Date(firstDay.getTime() + EXPIRE * DAY)).from;

const partitioned = await oldSchemaFilled();
try {
  const [, migrate] = await timed(() => runMigrations(partitioned.url, log));
  report('migrate to day partitions (copy + indexes, one transaction)', migrate, { size: await partitionedSize(partitioned.pool) });
  const [dropped, drop] = await timed(() => dropExpiredPartitions(partitioned.pool, now, retentionDays, { log }));
  report('expire by DROP of day partitions', drop, { dropped: dropped.length, left: (await partitioned.pool.query('SELECT count(*)::int AS n FROM messages')).rows[0].n });
} finally {
  await partitioned.cleanup();
}

const plain = await oldSchemaFilled();
try {
  const before = await size(plain.pool);
  const [deleted, del] = await timed(() => plain.pool.query(`DELETE FROM messages WHERE received_at < $1`, [cutoff]));
  report('expire by DELETE (unpartitioned)', del, { deleted: deleted.rowCount, sizeBefore: before });
  const [, vacuum] = await timed(() => plain.pool.query('VACUUM messages'));
  report('VACUUM after the DELETE', vacuum, { sizeAfter: await size(plain.pool) });
} finally {
  await plain.cleanup();
}
