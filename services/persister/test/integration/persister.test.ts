import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { readdirSync } from 'node:fs';
import { expect } from 'chai';
import pg from 'pg';
import {
  Counter,
  createSilentLogger,
  deadLettersTable,
  DEFAULT_CONSUMER_OPTIONS,
  DEFAULT_STREAM_OPTIONS,
  encodeEnvelope,
  ensureMessagesStream,
  ensurePersisterConsumer,
  Histogram,
  MAX_PAYLOAD_DEPTH,
  messagesTable,
  newMessageId,
  Registry,
} from '@falcon/shared';
import { createBatchHandler } from '../../src/batch.js';
import { MIGRATIONS_DIR, runMigrations } from '../../src/migrate.js';
import { startPersister, type Persister } from '../../src/persister.js';
import { COPY_THRESHOLD, createMessageStore, type MessageRow, type MessageStore } from '../../src/store.js';
import { emptyDatabase, testDatabase, testNats, type TestDatabase, type TestNats } from '../../../../test-support/infra.js';
import { waitFor } from '../../../../scripts/stack.js';

function metrics() {
  const registers = [new Registry()];
  return {
    messages: new Counter({ name: 'm', help: 'm', labelNames: ['outcome'] as const, registers }),
    batchSeconds: new Histogram({ name: 's', help: 's', registers }),
    batchSize: new Histogram({ name: 'z', help: 'z', registers }),
  };
}

describe('persister against JetStream and Postgres', function () {
  this.timeout(60_000);
  let nats: TestNats;
  let db: TestDatabase;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  const running: Persister[] = [];

  async function start(store: MessageStore = createMessageStore(db.pool), batchSize = 200): Promise<Persister> {
    const consumer = await js.consumers.get(nats.names.stream, nats.names.persisterConsumer);
    const persister = startPersister({
      messages: await consumer.consume({ max_messages: batchSize * 2 }),
      handle: createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 5 }),
      batchSize,
      log: createSilentLogger(),
      metrics: metrics(),
    });
    running.push(persister);
    return persister;
  }

  async function publish(count: number, payload = (i: number) => `{"i":${i}}`): Promise<number[]> {
    const acks = await Promise.all(
      Array.from({ length: count }, (_, i) => js.publish(nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), payload(i)))),
    );
    return acks.map((a) => a.seq);
  }

  const rowCount = async () => Number((await db.pool.query('SELECT count(*) AS n FROM messages')).rows[0].n);
  const pending = async () => {
    const info = await jsm.consumers.info(nats.names.stream, nats.names.persisterConsumer);
    return info.num_pending + info.num_ack_pending;
  };

  beforeEach(async () => {
    nats = await testNats();
    db = await testDatabase();
    js = jetstream(nats.nc);
    jsm = await jetstreamManager(nats.nc);
    await ensureMessagesStream(jsm, nats.names, DEFAULT_STREAM_OPTIONS);
    await ensurePersisterConsumer(jsm, nats.names, DEFAULT_CONSUMER_OPTIONS);
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop()));
    await nats.cleanup();
    await db.cleanup();
  });

  it('stores every message exactly once with the envelope fields and acks them all', async () => {
    const seqs = await publish(1000);
    await start();
    await waitFor('1000 rows', async () => (await rowCount()) === 1000);
    await waitFor('the consumer to drain', async () => (await pending()) === 0);
    const rows = await db.pool.query('SELECT seq, payload::text AS payload FROM messages ORDER BY seq');
    expect(rows.rows.map((r) => r.seq)).to.deep.equal(seqs);
    expect(rows.rows[10].payload).to.equal('{"i":10}');
  });

  it('stores the publisher a message carries, and NULL for one without', async () => {
    const ack = await js.publish(nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), '{"by":1}', 'svc\\"writer"'));
    await publish(1);
    await start();
    await waitFor('2 rows', async () => (await rowCount()) === 2);
    const rows = await db.pool.query('SELECT seq, publisher FROM messages ORDER BY seq');
    expect(rows.rows).to.deep.equal([
      { seq: ack.seq, publisher: 'svc\\"writer"' },
      { seq: ack.seq + 1, publisher: null },
    ]);
  });

  it('lets two replicas share the durable consumer and still store each message once', async () => {
    let first = 0;
    let second = 0;
    const counting = (add: (n: number) => void): MessageStore => {
      const store = createMessageStore(db.pool);
      return { insert: async (rows) => { add(rows.length); return store.insert(rows); }, deadLetter: store.deadLetter };
    };
    await start(counting((n) => (first += n)), 50);
    await start(counting((n) => (second += n)), 50);
    await publish(3000);
    await waitFor('3000 rows', async () => (await rowCount()) === 3000);
    await waitFor('the consumer to drain', async () => (await pending()) === 0);
    const distinct = await db.pool.query('SELECT count(DISTINCT seq) AS n FROM messages');
    expect(Number(distinct.rows[0].n)).to.equal(3000);
    expect(first, 'first replica took work').to.be.greaterThan(0);
    expect(second, 'second replica took work').to.be.greaterThan(0);
  });

  it('keeps messages through a database outage and stores them once it is back', async () => {
    let down = true;
    const store = createMessageStore(db.pool);
    const flaky: MessageStore = {
      insert: async (rows) => {
        if (down) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
        return store.insert(rows);
      },
      deadLetter: store.deadLetter,
    };
    await start(flaky);
    await publish(100);
    await waitFor('messages to be delivered and refused', async () => (await jsm.consumers.info(nats.names.stream, nats.names.persisterConsumer)).num_redelivered > 0);
    expect(await rowCount()).to.equal(0);
    down = false;
    await waitFor('100 rows after recovery', async () => (await rowCount()) === 100, 30_000);
    await waitFor('the consumer to drain', async () => (await pending()) === 0, 30_000);
  });

  it('dead-letters the messages it would never store, without asking Postgres, while the rest of their batch is stored', async () => {
    await publish(10);
    // A foreign publisher's messages whose head has the right shape: the gateway skips exactly these.
    const foreign = [
      `{"id":"${newMessageId()}","receivedAt":"2026-02-30T10:15:30.123Z","payload":{"i":10}}`,
      encodeEnvelope(newMessageId(), new Date().toISOString(), '{"broken": }'),
      encodeEnvelope(newMessageId(), new Date().toISOString(), `{"a":${'['.repeat(MAX_PAYLOAD_DEPTH)}${']'.repeat(MAX_PAYLOAD_DEPTH)}}`),
    ];
    for (const text of foreign) await js.publish(nats.names.subject, text);
    await publish(9);
    await start();
    await waitFor('19 rows', async () => (await rowCount()) === 19);
    await waitFor('three dead letters', async () => Number((await db.pool.query('SELECT count(*) AS n FROM dead_letters')).rows[0].n) === 3);
    const dead = (await db.pool.query('SELECT seq, reason, envelope FROM dead_letters ORDER BY seq')).rows;
    expect(dead.map((d: { reason: string }) => d.reason)).to.deep.equal([
      'undecodable stream message: not a Falcon envelope: receivedAt is not a real instant',
      'undecodable stream message: not a Falcon envelope: the payload is not a JSON object',
      `undecodable stream message: not a Falcon envelope: the payload nests deeper than ${MAX_PAYLOAD_DEPTH} levels`,
    ]);
    expect(dead.map((d: { envelope: string }) => d.envelope)).to.deep.equal(foreign);
    await waitFor('the consumer to drain', async () => (await pending()) === 0);
  });

  it('finishes and acks the batch in hand when stopped', async () => {
    await publish(500);
    const persister = await start();
    await waitFor('some rows', async () => (await rowCount()) > 0);
    await persister.stop();
    running.splice(running.indexOf(persister), 1);
    await nats.nc.flush();
    const maxStored = Number((await db.pool.query('SELECT coalesce(max(seq), 0) AS m FROM messages')).rows[0].m);
    expect(maxStored).to.be.greaterThan(0);
    const info = await jsm.consumers.info(nats.names.stream, nats.names.persisterConsumer);
    // Batches are written in order, so rows 1..maxStored are stored; every one was acked.
    expect(info.ack_floor.stream_seq).to.be.at.least(maxStored);
    await start();
    await waitFor('all 500 rows after a restart', async () => (await rowCount()) === 500);
    const distinct = await db.pool.query('SELECT count(DISTINCT seq) AS n FROM messages');
    expect(Number(distinct.rows[0].n)).to.equal(500);
  });

  it('migrates an empty database exactly once when several migrators race', async () => {
    // An empty database, not the one beforeEach migrated: the race is over creating the schema.
    const empty = await emptyDatabase();
    const pool = new pg.Pool({ connectionString: empty.url, max: 1 });
    try {
      const log = createSilentLogger();
      const results = await Promise.all([1, 2, 3].map(() => runMigrations(empty.url, log)));
      const migrations = readdirSync(MIGRATIONS_DIR).map((file) => file.replace(/\.sql$/, '')).sort();
      expect(migrations.length).to.be.greaterThan(0);
      // Every migration applied by exactly one of the racers; the others found it done.
      expect(results.flat().sort()).to.deep.equal(migrations);
      expect(await runMigrations(empty.url, log)).to.deep.equal([]);
      const applied = await pool.query('SELECT name FROM pgmigrations ORDER BY name');
      expect(applied.rows.map((r) => r.name)).to.deep.equal(migrations);
      // The schema is the one the shared contract names, for the writer and the reader alike.
      for (const table of [messagesTable, deadLettersTable]) {
        const columns = await pool.query('SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1', [table.name]);
        expect(columns.rows.map((r) => r.column_name).sort(), table.name).to.deep.equal(Object.values(table.columns).sort());
      }
    } finally {
      await pool.end();
      await empty.cleanup();
    }
  });
});

describe('message store against Postgres', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  beforeEach(async () => {
    db = await testDatabase();
  });
  afterEach(() => db.cleanup());

  const rows = (from: number, count: number, payload = (seq: number) => `{"seq":${seq}}`): MessageRow[] =>
    Array.from({ length: count }, (_, i) => ({ seq: from + i, id: newMessageId(), receivedAt: new Date().toISOString(), payloadJson: payload(from + i) }));
  const stored = async () => (await db.pool.query('SELECT seq, payload::text AS payload FROM messages ORDER BY seq')).rows as { seq: string; payload: string }[];

  for (const size of [5, COPY_THRESHOLD + 50]) {
    it(`keeps each payload's exact bytes in a batch of ${size}`, async () => {
      const odd = ['{ "spaced" : [1, 2] }', '{"esc":"a\\"b\\\\c\\n\\t\\u0000\\ud83d\\ude00"}', '{\t"raw":1}\n', '{"ü":"日本","emoji":"😀"}', '{"line":"x"\r\n}'];
      const batch = rows(1, size, (seq) => odd[seq % odd.length]!);
      expect(await createMessageStore(db.pool).insert(batch)).to.equal(size);
      expect((await stored()).map((r) => r.payload)).to.deep.equal(batch.map((r) => r.payloadJson));
    });
  }

  it('stores only the new rows of a large batch that holds seqs already stored (a redelivery), and the connection stays usable', async () => {
    const store = createMessageStore(db.pool);
    const first = rows(1, 100);
    expect(await store.insert(first)).to.equal(100);
    // The second batch repeats seqs 51..100 (same rows, as a redelivery brings them) and adds 101..400.
    const again = [...first.slice(50), ...rows(101, 300)];
    expect(again.length).to.be.greaterThan(COPY_THRESHOLD);
    expect(await store.insert(again)).to.equal(300);
    expect(await store.insert(rows(401, 5))).to.equal(5);
    const seqs = (await stored()).map((r) => Number(r.seq));
    expect(seqs).to.deep.equal(Array.from({ length: 405 }, (_, i) => i + 1));
  });

  it('refuses a payload that is not one JSON value, even one that would close its object early', async () => {
    const store = createMessageStore(db.pool);
    for (const batch of [rows(1, 3, () => '{"a":1},"seq":99,"x":{}'), rows(1, COPY_THRESHOLD + 1, (seq) => (seq === 7 ? '{"a":1} {"b":2}' : '{}'))]) {
      let failed: unknown;
      await store.insert(batch).catch((err: unknown) => (failed = err));
      expect((failed as { code?: string })?.code).to.equal('22P02');
    }
    expect(await stored()).to.deep.equal([]);
  });
});
