import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import { listAfter, postMessage, type Persisted } from '../client.js';
import { startLocalStack, type LocalStack } from '../target.js';
import { ROOT, waitFor } from '../../scripts/stack.js';

const DAY = 86_400_000;

describe('retention (RETENTION_DAYS, the one-shot retention entry against a local stack)', function () {
  this.timeout(300_000);
  let stack: LocalStack;

  before(async () => {
    stack = await startLocalStack();
  });
  after(() => stack?.stop());

  it('makes messages older than the window disappear whole, answering 404 by id, and leaves newer ones alone', async () => {
    // History: 200 messages from 10 and 9 days ago, written as the persister wrote them then.
    const old = Array.from({ length: 200 }, (_, i) => ({ seq: 1_000_001 + i, id: randomUUID(), receivedAt: new Date(Date.now() - (10 - (i % 2)) * DAY).toISOString() }));
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    try {
      await db.query(`INSERT INTO messages (seq, id, received_at, payload) SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::json[])`, [
        old.map((m) => m.seq),
        old.map((m) => m.id),
        old.map((m) => m.receivedAt),
        old.map((m) => JSON.stringify({ old: m.seq })),
      ]);
    } finally {
      await db.end();
    }
    const fresh = [];
    for (let i = 0; i < 5; i++) fresh.push((await postMessage(stack.ingest, { fresh: i })).body);
    await waitFor('the fresh messages to be persisted', async () => (await listAfter(stack.query, 0)).filter((m) => m.seq < 1_000_000).length === 5);
    const before = await listAfter(stack.query, 0);
    expect(before).to.have.length(205);
    expect((await fetch(`${stack.query}/api/messages/${old[0]!.id}`)).status).to.equal(200);

    const entry = join(ROOT, 'services/persister/dist/retention-main.js');
    await promisify(execFile)(process.execPath, [entry], { env: { ...process.env, DATABASE_URL: stack.databaseUrl, RETENTION_DAYS: '7', LOG_LEVEL: 'warn' } });

    for (const m of old.slice(0, 20)) {
      const res = await fetch(`${stack.query}/api/messages/${m.id}`);
      expect(res.status, m.id).to.equal(404);
      expect(res.headers.get('content-type')).to.equal('application/problem+json');
    }
    const after = await listAfter(stack.query, 0);
    expect(after.map((m) => m.id)).to.deep.equal(before.filter((m) => m.seq < 1_000_000).map((m) => m.id));
    expect(after).to.deep.equal(before.filter((m: Persisted) => m.seq < 1_000_000));
    for (const a of fresh) expect((await fetch(`${stack.query}/api/messages/${a.id}`)).status).to.equal(200);
    const expiredRange = `${stack.query}/api/messages?from=${encodeURIComponent(new Date(Date.now() - 11 * DAY).toISOString())}&to=${encodeURIComponent(new Date(Date.now() - 8 * DAY).toISOString())}`;
    expect(await (await fetch(expiredRange)).json()).to.deep.equal([]);
    expect(await (await fetch(expiredRange, { headers: { accept: 'application/x-ndjson' } })).text()).to.equal('');
  });
});
