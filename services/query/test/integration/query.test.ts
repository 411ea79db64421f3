import { expect } from 'chai';
import { newMessageId } from '@falcon/shared';
import { testDatabase, type TestDatabase } from '../../../../test-support/infra.js';
import { serveQuery } from './serve.js';

describe('query against Postgres', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let server: { url: string; close(): void };
  let url: string;
  const ids: string[] = [];

  async function insert(fromSeq: number, count: number, payload: (seq: number) => string = (seq) => `{"seq":${seq},"text":"m${seq}"}`) {
    const seqs = Array.from({ length: count }, (_, i) => fromSeq + i);
    const batchIds = seqs.map(() => newMessageId());
    ids.push(...batchIds);
    await db.pool.query(
      `INSERT INTO messages (seq, id, received_at, payload) SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::json[])`,
      [seqs, batchIds, seqs.map(() => '2026-11-27T10:15:30.123Z'), seqs.map(payload)],
    );
  }

  before(async () => {
    db = await testDatabase();
    server = await serveQuery(db.pool);
    url = server.url;
  });

  after(async () => {
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
    await insert(5, 6);
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
    await insert(11, 20_000, (seq) => `{"seq":${seq},"pad":"${'x'.repeat(200)}"}`);
    const res = await fetch(`${url}/api/messages`);
    const all = (await res.json()) as { seq: number }[];
    expect(all).to.have.length(20_010);
    expect(all.every((m, i) => m.seq === i + 1)).to.equal(true);
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
    // Leave the table as the other tests expect it, whatever order they run in.
    await db.pool.query('DELETE FROM messages WHERE seq IN (900001, 900002)');
  });

});
