import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { expect } from 'chai';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import {
  Counter,
  createSilentLogger,
  DEFAULT_CONSUMER_OPTIONS,
  DEFAULT_STREAM_OPTIONS,
  encodeEnvelope,
  ensureMessagesStream,
  ensurePersisterConsumer,
  Histogram,
  newMessageId,
  Registry,
} from '@falcon/shared';
import { createBatchHandler } from '../../src/batch.js';
import { MIGRATIONS_DIR, runMigrations } from '../../src/migrate.js';
import { createPartition, dropExpiredPartitions, ensurePartitions, listPartitions, partitionFor } from '../../src/partitions.js';
import { startPersister } from '../../src/persister.js';
import { runRetention } from '../../src/retention.js';
import { createMessageStore } from '../../src/store.js';
import { emptyDatabase, quietPool, testDatabase, testNats, type TestDatabase } from '../../../../test-support/infra.js';
import { ROOT, waitFor } from '../../../../scripts/stack.js';

const DAY = 86_400_000;
const log = createSilentLogger();
const now = () => new Date();
const daysAgo = (n: number) => new Date(Date.now() - n * DAY);

/** `count` rows spread over `day`, from `fromSeq` on; makes the day's partition when `partition`. */
async function fill(pool: pg.Pool, fromSeq: number, count: number, day: Date, partition = true): Promise<void> {
  if (partition) await createPartition(pool, partitionFor(day), { log });
  const start = partitionFor(day).from;
  await pool.query(
    `INSERT INTO messages (seq, id, received_at, payload)
     SELECT $1::bigint + i, gen_random_uuid(), $3::timestamptz + (i * interval '1 ms' * (86399000 / $2::int)),
            json_build_object('i', i, 'text', 'tab\there "quoted" \\u00e9')::json
       FROM generate_series(0, $2::int - 1) AS i`,
    [fromSeq, count, start],
  );
}

/** Count and a digest of every column, so "nothing touched" compares contents, not just counts. */
async function digest(pool: pg.Pool, where = 'true'): Promise<{ n: number; md5: string | null }> {
  const result = await pool.query(
    `SELECT count(*)::int AS n, md5(string_agg(seq || '|' || id || '|' || received_at || '|' || persisted_at || '|' || payload::text, ',' ORDER BY seq)) AS md5
       FROM messages WHERE ${where}`,
  );
  return result.rows[0] as { n: number; md5: string | null };
}

describe('messages partitioned by day, with retention', function () {
  this.timeout(120_000);

  describe('the migration to partitions', () => {
    it('converts a filled unpartitioned table without losing or changing a row, and back', async () => {
      const scratch = await emptyDatabase();
      const pool = quietPool(scratch.url, 2);
      try {
        await runner({ databaseUrl: scratch.url, dir: MIGRATIONS_DIR, direction: 'up', count: 1, migrationsTable: 'pgmigrations', log: () => {} });
        expect((await pool.query(`SELECT relkind FROM pg_class WHERE relname = 'messages'`)).rows[0].relkind).to.equal('r');
        await fill(pool, 1, 5_000, daysAgo(40), false);
        await fill(pool, 5_001, 5_000, daysAgo(3), false);
        await fill(pool, 10_001, 5_000, now(), false);
        const before = await digest(pool);

        await runMigrations(scratch.url, log);

        expect((await pool.query(`SELECT relkind FROM pg_class WHERE relname = 'messages'`)).rows[0].relkind).to.equal('p');
        expect(await digest(pool)).to.deep.equal(before);
        const partitions = await listPartitions(pool);
        for (const day of [daysAgo(40), daysAgo(3), now(), new Date(Date.now() + DAY)]) expect(partitions).to.include(partitionFor(day).name);
        expect(Number((await pool.query('SELECT count(*) FROM messages_default')).rows[0].count)).to.equal(0);

        // And back: the down migration restores the plain table with every row.
        await runner({ databaseUrl: scratch.url, dir: MIGRATIONS_DIR, direction: 'down', count: 1, migrationsTable: 'pgmigrations', log: () => {} });
        expect((await pool.query(`SELECT relkind FROM pg_class WHERE relname = 'messages'`)).rows[0].relkind).to.equal('r');
        expect(await digest(pool)).to.deep.equal(before);
      } finally {
        await pool.end();
        await scratch.cleanup();
      }
    });
  });

  describe('with the schema migrated', () => {
    let db: TestDatabase;

    beforeEach(async () => {
      db = await testDatabase();
    });

    afterEach(async () => {
      await db.cleanup();
    });

    it('keeps a redelivered seq a no-op across partitions (ON CONFLICT on seq, received_at)', async () => {
      const store = createMessageStore(db.pool);
      const row = { seq: 7, id: newMessageId(), receivedAt: daysAgo(2).toISOString(), payloadJson: '{"a":1}' };
      await ensurePartitions(db.pool, daysAgo(2), { log });
      expect(await store.insert([row])).to.equal(1);
      expect(await store.insert([row, { ...row, seq: 8, id: newMessageId() }])).to.equal(1);
      expect((await digest(db.pool)).n).to.equal(2);
    });

    it('takes a write for a day without a partition into the default, and moves it into its day when the partition is made', async () => {
      const store = createMessageStore(db.pool);
      const future = new Date(Date.now() + 10 * DAY);
      expect(await store.insert([{ seq: 1, id: newMessageId(), receivedAt: future.toISOString(), payloadJson: '{}' }])).to.equal(1);
      expect(Number((await db.pool.query('SELECT count(*) FROM messages_default')).rows[0].count)).to.equal(1);
      const created = await ensurePartitions(db.pool, now(), { log });
      expect(created).to.include(partitionFor(future).name);
      expect(Number((await db.pool.query('SELECT count(*) FROM messages_default')).rows[0].count)).to.equal(0);
      expect(Number((await db.pool.query(`SELECT count(*) FROM ${partitionFor(future).name}`)).rows[0].count)).to.equal(1);
    });

    it('drops whole days older than the window and touches nothing newer', async () => {
      for (const [i, n] of [10, 5, 3, 2, 1, 0].entries()) {
        await fill(db.pool, i * 1_000 + 1, 1_000, daysAgo(n));
      }
      const newer = await digest(db.pool, `received_at >= '${partitionFor(daysAgo(3)).from}'`);

      const { dropped } = await runRetention(db.pool, 3, now(), { log });

      expect(dropped.sort()).to.deep.equal([partitionFor(daysAgo(10)).name, partitionFor(daysAgo(5)).name].sort());
      expect(await digest(db.pool)).to.deep.equal(newer);
      expect((await digest(db.pool, `received_at < '${partitionFor(daysAgo(3)).from}'`)).n).to.equal(0);
      // Running again changes nothing.
      expect((await runRetention(db.pool, 3, now(), { log })).dropped).to.deep.equal([]);
      expect(await digest(db.pool)).to.deep.equal(newer);
    });

    it('keeps every day when no retention is set, and still makes partitions ahead', async () => {
      await fill(db.pool, 1, 100, daysAgo(400));
      const { created, dropped } = await runRetention(db.pool, undefined, new Date(Date.now() + 2 * DAY), { log });
      expect(dropped).to.deep.equal([]);
      expect(created).to.include(partitionFor(new Date(Date.now() + 3 * DAY)).name);
      expect((await digest(db.pool)).n).to.equal(100);
    });

    it('runs as the one-shot entry point with RETENTION_DAYS', async () => {
      await fill(db.pool, 1, 50, daysAgo(9));
      await fill(db.pool, 51, 50, now());
      const entry = join(ROOT, 'services/persister/dist/retention-main.js');
      await promisify(execFile)(process.execPath, [entry], { env: { ...process.env, DATABASE_URL: db.url, RETENTION_DAYS: '7', LOG_LEVEL: 'silent' } });
      expect((await digest(db.pool)).n).to.equal(50);
      expect(await listPartitions(db.pool)).to.not.include(partitionFor(daysAgo(9)).name);
      const bad = await promisify(execFile)(process.execPath, [entry], { env: { ...process.env, DATABASE_URL: db.url, RETENTION_DAYS: 'soon' } }).catch((err: { code: number; stderr: string }) => err);
      expect((bad as { code: number }).code).to.not.equal(0);
    });

    it('lets the persister keep writing while expired partitions are dropped', async () => {
      const nats = await testNats();
      const jsm = await jetstreamManager(nats.nc);
      await ensureMessagesStream(jsm, nats.names, DEFAULT_STREAM_OPTIONS);
      await ensurePersisterConsumer(jsm, nats.names, DEFAULT_CONSUMER_OPTIONS);
      const registers = [new Registry()];
      const consumer = await jetstream(nats.nc).consumers.get(nats.names.stream, nats.names.persisterConsumer);
      const persister = startPersister({
        messages: await consumer.consume({ max_messages: 200 }),
        handle: createBatchHandler({ store: createMessageStore(db.pool), log, maxDeliver: 5 }),
        batchSize: 100,
        log,
        metrics: {
          messages: new Counter({ name: 'm', help: 'm', labelNames: ['outcome'] as const, registers }),
          batchSeconds: new Histogram({ name: 's', help: 's', registers }),
          batchSize: new Histogram({ name: 'z', help: 'z', registers }),
        },
      });
      try {
        await ensurePartitions(db.pool, now(), { log });
        for (let n = 30; n < 50; n++) {
          await fill(db.pool, 1_000_000 + n * 1_000, 1_000, daysAgo(n));
        }
        const js = jetstream(nats.nc);
        const live = async () => (await digest(db.pool, `received_at > now() - interval '1 day'`)).n;
        let published = 0;
        let writing = true;
        const writer = (async () => {
          while (writing) {
            await Promise.all(Array.from({ length: 20 }, () => js.publish(nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), '{"live":true}'))));
            published += 20;
          }
        })();
        await waitFor('live writes to be stored', async () => (await live()) > 0);
        // A long reader (an export) holds its lock on every partition, so the DROP has to wait,
        // give up on its lock timeout and retry while the persister keeps going.
        const reader = new pg.Client({ connectionString: db.url });
        await reader.connect();
        await reader.query('BEGIN');
        await reader.query('SELECT count(*) FROM messages');
        const before = await live();
        const dropping = dropExpiredPartitions(db.pool, now(), 7, { log, lockTimeoutMs: 100, attempts: 1_000 });
        await waitFor('writes stored while the drop waits', async () => (await live()) >= before + 200);
        await reader.query('COMMIT');
        await reader.end();
        const dropped = await dropping;
        writing = false;
        await writer;
        expect(dropped).to.have.length(20);
        await waitFor(`${published} live rows`, async () => (await live()) === published);
        expect((await digest(db.pool)).n).to.equal(published);
      } finally {
        await persister.stop();
        await nats.cleanup();
      }
    });
  });
});
