import { connect as connectTcp, type Socket } from 'node:net';
import { expect } from 'chai';
import { newMessageId, type Registry } from '@falcon/shared';
import { DEFAULT_EXPORT_LIMITS, type ExportLimits } from '../../src/exports.js';
import { testDatabase, type TestDatabase } from '../../../../test-support/infra.js';
import { waitFor } from '../../../../scripts/stack.js';
import { serveQuery, type ServedQuery } from './serve.js';

// Every test has its own database and makes the rows it reads, so each passes alone (--grep)
// and in any order.
describe('query against Postgres', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let server: ServedQuery;
  let url: string;
  let registry: Registry;
  let ids: string[];

  async function insert(fromSeq: number, count: number, payload: (seq: number) => string = (seq) => `{"seq":${seq},"text":"m${seq}"}`) {
    const seqs = Array.from({ length: count }, (_, i) => fromSeq + i);
    const batchIds = seqs.map(() => newMessageId());
    ids.push(...batchIds);
    await db.pool.query(
      `INSERT INTO messages (seq, id, received_at, payload) SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::json[])`,
      [seqs, batchIds, seqs.map(() => '2026-11-27T10:15:30.123Z'), seqs.map(payload)],
    );
  }

  /** Serves the app on the test database; `exports` overrides the export limits. */
  async function serve(exports: Partial<ExportLimits> = {}): Promise<void> {
    server?.close();
    server = await serveQuery(db.pool, { exports, corsOrigins: 'http://page.example' });
    url = server.url;
    registry = server.registry;
  }

  beforeEach(async () => {
    ids = [];
    db = await testDatabase();
    await serve();
  });

  afterEach(async () => {
    server.close();
    await db.cleanup();
  });

  it('answers [] for an empty table', async () => {
    const res = await fetch(`${url}/api/messages`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    expect(await res.json()).to.deep.equal([]);
  });

  it('streams every message as one JSON array by seq, in the contract shape, payload bytes intact', async () => {
    await insert(1, 3);
    await db.pool.query(`INSERT INTO messages (seq, id, received_at, payload) VALUES (4, $1, '2026-11-27T10:15:30.999Z', $2)`, [
      newMessageId(),
      '{"s":"a\\\\b\\n\\"q\\" \\u0000 é 😀","n":1e400,"nested":{"deep":[true,null]}}',
    ]);
    const res = await fetch(`${url}/api/messages`);
    const text = await res.text();
    expect(text).to.contain('"payload":{"s":"a\\\\b\\n\\"q\\" \\u0000 é 😀","n":1e400,"nested":{"deep":[true,null]}}');
    const all = JSON.parse(text);
    expect(all.map((m: { seq: number }) => m.seq)).to.deep.equal([1, 2, 3, 4]);
    expect(Object.keys(all[0])).to.deep.equal(['id', 'seq', 'receivedAt', 'persistedAt', 'payload']);
    expect(all[0]).to.include({ seq: 1, receivedAt: '2026-11-27T10:15:30.123Z' });
    expect(all[0].persistedAt).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(all[0].payload).to.deep.equal({ seq: 1, text: 'm1' });
  });

  it('pages with after and limit and links the next page while more rows exist', async () => {
    await insert(1, 10);
    const first = await fetch(`${url}/api/messages?after=0&limit=4`);
    expect(((await first.json()) as { seq: number }[]).map((m: { seq: number }) => m.seq)).to.deep.equal([1, 2, 3, 4]);
    expect(first.headers.get('link')).to.equal('</api/messages?after=4&limit=4>; rel="next"');
    const last = await fetch(`${url}/api/messages?after=8&limit=4`);
    expect(((await last.json()) as { seq: number }[]).map((m: { seq: number }) => m.seq)).to.deep.equal([9, 10]);
    expect(last.headers.get('link')).to.equal(null);
    const exact = await fetch(`${url}/api/messages?after=6&limit=4`);
    expect(exact.headers.get('link')).to.equal(null);
    expect(await (await fetch(`${url}/api/messages?after=100`)).json()).to.deep.equal([]);
  });

  it('returns one message by id, 404 when unknown and 400 when not a UUID', async () => {
    await insert(1, 3);
    const one = await fetch(`${url}/api/messages/${ids[1]}`);
    expect(one.status).to.equal(200);
    expect(await one.json()).to.include({ id: ids[1], seq: 2 });
    const upper = await fetch(`${url}/api/messages/${ids[1]!.toUpperCase()}`);
    expect(upper.status).to.equal(200);
    const missing = await fetch(`${url}/api/messages/${newMessageId()}`);
    expect(missing.status).to.equal(404);
    expect(missing.headers.get('content-type')).to.equal('application/problem+json');
    const bad = await fetch(`${url}/api/messages/not-a-uuid`);
    expect(bad.status).to.equal(400);
  });

  it('answers 400 problems for bad query parameters', async () => {
    for (const query of ['after=-1', 'limit=0', 'limit=1001', 'after=x', 'foo=bar', 'limit=1&limit=2']) {
      const res = await fetch(`${url}/api/messages?${query}`);
      expect(res.status, query).to.equal(400);
      expect(((await res.json()) as { errors: unknown }).errors).to.be.an('array').that.is.not.empty;
    }
  });

  it('streams a large table in order', async () => {
    await insert(1, 20_000, (seq) => `{"seq":${seq},"pad":"${'x'.repeat(200)}"}`);
    const res = await fetch(`${url}/api/messages`);
    const all = (await res.json()) as { seq: number }[];
    expect(all).to.have.length(20_000);
    expect(all.every((m, i) => m.seq === i + 1)).to.equal(true);
  });

  it('lets the live page, on another origin, read messages (CORS)', async () => {
    await insert(1, 2);
    const page = await fetch(`${url}/api/messages?after=0&limit=1`, { headers: { origin: 'http://page.example' } });
    expect(page.headers.get('access-control-allow-origin')).to.equal('http://page.example');
    expect(page.headers.get('access-control-expose-headers')).to.match(/Link/);
    const other = await fetch(`${url}/api/messages?after=0&limit=1`, { headers: { origin: 'http://elsewhere.example' } });
    expect(other.headers.get('access-control-allow-origin')).to.equal(null);
    // With auth on the page sends its token: the preflight must admit the header.
    const preflight = await fetch(`${url}/api/messages`, { method: 'OPTIONS', headers: { origin: 'http://page.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });
    expect(preflight.headers.get('access-control-allow-origin')).to.equal('http://page.example');
    expect(preflight.headers.get('access-control-allow-headers')).to.match(/Authorization/);
  });

  it('lists dead letters', async () => {
    await db.pool.query(`INSERT INTO dead_letters (seq, id, received_at, deliveries, reason, envelope) VALUES (99999, NULL, NULL, 3, 'undecodable', 'garbage')`);
    const res = await fetch(`${url}/api/dead-letters`);
    expect(res.status).to.equal(200);
    const [entry] = (await res.json()) as Record<string, unknown>[];
    expect(entry).to.include({ seq: 99999, deliveries: 3, reason: 'undecodable', envelope: 'garbage' });
  });

  it('returns publisher only for messages that have one, in lists, pages and by id', async () => {
    const withId = newMessageId();
    const withoutId = newMessageId();
    await db.pool.query(
      `INSERT INTO messages (seq, id, received_at, payload, publisher) VALUES (900001, $1, now(), '{"a":1}', 'svc "a"'), (900002, $2, now(), '{"a":2}', NULL)`,
      [withId, withoutId],
    );
    const one = (await (await fetch(`${url}/api/messages/${withId}`)).json()) as Record<string, unknown>;
    expect(one['publisher']).to.equal('svc "a"');
    expect(Object.keys(one)).to.deep.equal(['id', 'seq', 'receivedAt', 'persistedAt', 'publisher', 'payload']);
    const other = (await (await fetch(`${url}/api/messages/${withoutId}`)).json()) as Record<string, unknown>;
    expect(other).to.not.have.property('publisher');
    const page = (await (await fetch(`${url}/api/messages?after=900000&limit=10`)).json()) as Record<string, unknown>[];
    expect(page.map((m) => m['publisher'])).to.deep.equal(['svc "a"', undefined]);
    const all = (await (await fetch(`${url}/api/messages`)).json()) as Record<string, unknown>[];
    expect(all.find((m) => m['id'] === withId)?.['publisher']).to.equal('svc "a"');
  });

  describe('while full exports run', () => {
    /** Opens a full export and never reads it: the socket is paused, so its buffers fill. */
    async function stalledExport(): Promise<Socket> {
      const socket = connectTcp(server.port, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      socket.on('error', () => undefined); // a reset is what a cut-off reader may see
      socket.write('GET /api/messages HTTP/1.1\r\nHost: test\r\n\r\n');
      socket.pause();
      return socket;
    }

    const metric = async (name: string) => (await registry.getSingleMetricAsString(name)).split('\n').filter((l) => !l.startsWith('#'));

    it('bounds concurrent exports with a 503, keeps lookups and pages answering, and cuts off readers that stopped', async () => {
      // Far more than the socket buffers of both ends hold, so a reader that stops stalls the server.
      await db.pool.query(`INSERT INTO messages (seq, id, received_at, payload)
        SELECT s, gen_random_uuid(), '2026-11-27T10:15:30.123Z', json_build_object('seq', s, 'pad', repeat('x', 1000))
        FROM generate_series(1, 40000) AS s`);
      const lookups = (await db.pool.query('SELECT id FROM messages WHERE seq IN (1, 20000, 40000) ORDER BY seq')).rows.map((r) => r.id as string);
      // A pool of 4: two exports may take two connections; lookups and pages keep the rest.
      await serve({ maxConcurrent: 2, stallTimeoutMs: 1_500 });
      const readers = await Promise.all([stalledExport(), stalledExport()]);
      await waitFor('both exports running', async () => (await metric('falcon_query_exports_active')).some((l) => / 2$/.test(l)));

      const third = await fetch(`${url}/api/messages`);
      expect(third.status).to.equal(503);
      expect(third.headers.get('retry-after')).to.equal(String(DEFAULT_EXPORT_LIMITS.retryAfterSeconds));
      expect(((await third.json()) as { type: string }).type).to.match(/unavailable$/);

      // Many more lookups and pages than the pool has connections, all answered.
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => fetch(i % 2 ? `${url}/api/messages/${lookups[i % 3]}` : `${url}/api/messages?after=${i * 100}&limit=50`).then((r) => r.status)),
      );
      expect(answers.every((status) => status === 200)).to.equal(true);

      // The stalled readers are cut off, their connections freed, and exports serve again.
      await waitFor('the stalled readers cut off', async () => /reason="stalled".* 2$/.test((await metric('falcon_query_exports_cut_total')).join()), 15_000);
      await waitFor('export slots released', async () => (await metric('falcon_query_exports_active')).some((l) => / 0$/.test(l)));
      // Reading again, each reader finds its connection closed by the server before the array's end.
      const received = await Promise.all(
        readers.map(
          (socket) =>
            new Promise<string>((resolve) => {
              let tail = '';
              socket.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString('latin1')).slice(-16)));
              socket.once('close', () => resolve(tail));
              socket.resume();
            }),
        ),
      );
      for (const tail of received) expect(tail.endsWith(']'), 'a cut export is not a complete array').to.equal(false);
      const again = await fetch(`${url}/api/messages`);
      expect(again.status).to.equal(200);
      expect(((await again.json()) as unknown[]).length).to.equal(40_000);
    });

    it('has the slot of an export read to its end free for the same client’s next export', async () => {
      await insert(1, 50);
      await serve({ maxConcurrent: 1 });
      const statuses = new Set<number>();
      for (let i = 0; i < 100; i++) {
        const res = await fetch(`${url}/api/messages`);
        await res.arrayBuffer();
        statuses.add(res.status);
      }
      expect([...statuses]).to.deep.equal([200]);
    });

    it('ends an export that runs past its statement timeout', async () => {
      // The statement timeout is 57014, a transient error: before the first byte, a clean 503.
      await insert(1, 10);
      await serve({ statementTimeoutMs: 1_000 });
      const lock = await db.pool.connect();
      try {
        // Hold a lock the export's read must wait for (ACCESS EXCLUSIVE blocks even a SELECT):
        // without a statement timeout, the export would wait as long as the lock is held.
        await lock.query('BEGIN');
        await lock.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
        const started = Date.now();
        const res = await fetch(`${url}/api/messages`);
        expect(res.status).to.equal(503);
        expect(Date.now() - started).to.be.below(10_000);
      } finally {
        await lock.query('ROLLBACK');
        lock.release();
      }
    });

    it('counts every answer by route and outcome', async () => {
      await insert(1, 2);
      await fetch(`${url}/api/messages?after=0&limit=1`);
      await fetch(`${url}/api/messages/${ids[0]}`);
      await fetch(`${url}/api/messages/${newMessageId()}`);
      await fetch(`${url}/api/messages?limit=0`);
      await (await fetch(`${url}/api/messages`)).text();
      await waitFor('five answers counted', async () => {
        const lines = await metric('falcon_query_requests_total');
        return lines.map((l) => Number(l.split(' ').at(-1))).reduce((a, b) => a + b, 0) === 5;
      });
      const lines = (await metric('falcon_query_requests_total')).join('\n');
      expect(lines).to.match(/route="\/api\/messages",outcome="ok".* 2$/m);
      expect(lines).to.match(/route="\/api\/messages",outcome="rejected".* 1$/m);
      expect(lines).to.match(/route="\/api\/messages\/:id",outcome="ok".* 1$/m);
      expect(lines).to.match(/route="\/api\/messages\/:id",outcome="rejected".* 1$/m);
    });
  });
});
