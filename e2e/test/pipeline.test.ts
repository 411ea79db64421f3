import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { inParallel, listAfter, postMessage } from '../client.js';
import { target, wsUrl, type Target } from '../target.js';
import { openClient } from '../../test-support/ws-client.js';
import { ROOT, waitFor } from '../../scripts/stack.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const RFC3339_MS_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('pipeline end to end', function () {
  let t: Target;
  before(async function () {
    this.timeout(120_000);
    t = await target();
  });

  it('accepts a message with 202, id, seq, receivedAt and Location, then persists and pushes it', async () => {
    const client = await openClient(wsUrl(t.realtime[0]!));
    await waitFor('welcome', () => client.frames.length > 0);
    const payload = { text: 'hello', nested: { list: [1, 2.5, 'é', null, true] }, emoji: '😀' };
    const { status, body, res } = await postMessage(t.ingest, payload);
    expect(status).to.equal(202);
    expect(body.id).to.match(UUID_V7);
    expect(body.seq).to.be.a('number').greaterThan(0);
    expect(body.receivedAt).to.match(RFC3339_MS_UTC);
    expect(body.duplicate).to.equal(false);
    expect(res.headers.get('location')).to.equal(`/api/messages/${body.id}`);

    await client.waitForSeq(body.seq);
    const frame = client.frames.find((f) => f.seq === body.seq)!;
    const publisher = t.publisher === undefined ? {} : { publisher: t.publisher };
    expect(frame).to.deep.equal({ type: 'message', id: body.id, seq: body.seq, receivedAt: body.receivedAt, ...publisher, payload });
    await client.close();

    let stored: Record<string, unknown> | undefined;
    await waitFor('the message to be persisted', async () => {
      const r = await fetch(`${t.query}/api/messages/${body.id}`);
      if (r.status !== 200) return false;
      stored = (await r.json()) as Record<string, unknown>;
      return true;
    });
    expect(stored).to.include({ id: body.id, seq: body.seq, receivedAt: body.receivedAt, ...publisher });
    expect(stored!['payload']).to.deep.equal(payload);
    expect(stored!['persistedAt']).to.match(RFC3339_MS_UTC);
  });

  it('delivers many concurrent posts to two WebSocket clients in seq order and persists each once', async function () {
    this.timeout(120_000);
    const a = await openClient(wsUrl(t.realtime[0]!));
    const b = await openClient(wsUrl(t.realtime[t.realtime.length - 1]!));
    await waitFor('welcomes', () => a.frames.length > 0 && b.frames.length > 0);
    const count = 1000;
    const accepted = await inParallel(count, 50, async (i) => {
      const { status, body } = await postMessage(t.ingest, { i, run: 'concurrent' });
      expect(status).to.equal(202);
      return body;
    });
    const seqs = accepted.map((x) => x.seq).sort((x, y) => x - y);
    expect(new Set(seqs).size).to.equal(count);
    const last = seqs[count - 1]!;
    await a.waitForSeq(last, 30_000);
    await b.waitForSeq(last, 30_000);
    for (const c of [a, b]) {
      const got = c.seqs();
      expect(got.every((s, i) => i === 0 || s > got[i - 1]!), 'strictly increasing').to.equal(true);
      const gotSet = new Set(got);
      expect(seqs.every((s) => gotSet.has(s)), 'every accepted seq delivered').to.equal(true);
    }
    await a.close();
    await b.close();

    const first = seqs[0]! - 1;
    let persisted: Awaited<ReturnType<typeof listAfter>> = [];
    await waitFor('all to be persisted', async () => {
      persisted = (await listAfter(t.query, first)).filter((m) => m.seq <= last);
      return persisted.length >= count;
    }, 60_000, 200);
    const ids = new Set(accepted.map((x) => x.id));
    const mine = persisted.filter((m) => ids.has(m.id));
    expect(mine).to.have.length(count);
    expect(new Set(mine.map((m) => m.seq)).size).to.equal(count);
  });

  it('answers a retry with the same Idempotency-Key with the same id and seq, stored and pushed once', async () => {
    const client = await openClient(wsUrl(t.realtime[0]!));
    await waitFor('welcome', () => client.frames.length > 0);
    const key = `e2e-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const first = await postMessage(t.ingest, { order: 1 }, { 'idempotency-key': key });
    const retry = await postMessage(t.ingest, { order: 1 }, { 'idempotency-key': key });
    expect(first.status).to.equal(202);
    expect(retry.status).to.equal(202);
    expect(retry.body).to.deep.equal({ ...first.body, duplicate: true });
    expect(retry.res.headers.get('location')).to.equal(`/api/messages/${first.body.id}`);
    const marker = await postMessage(t.ingest, { marker: true });
    await client.waitForSeq(marker.body.seq);
    expect(client.seqs().filter((s) => s === first.body.seq)).to.have.length(1);
    await client.close();
    await waitFor('persisted', async () => (await fetch(`${t.query}/api/messages/${marker.body.id}`)).status === 200);
    const rows = (await listAfter(t.query, first.body.seq - 1)).filter((m) => m.id === first.body.id);
    expect(rows).to.have.length(1);
  });

  it('resumes with since: every message after it, then live, no gap and no duplicate', async () => {
    const before = await openClient(wsUrl(t.realtime[0]!));
    const start = await postMessage(t.ingest, { phase: 'before' });
    await before.waitForSeq(start.body.seq);
    await before.close();
    const missed = [];
    for (let i = 0; i < 5; i++) missed.push((await postMessage(t.ingest, { phase: 'away', i })).body.seq);
    const resumed = await openClient(wsUrl(t.realtime[0]!, `?since=${start.body.seq}`));
    await waitFor('welcome', () => resumed.frames.length > 0);
    expect(resumed.frames[0]).to.include({ type: 'welcome', recovered: true });
    // The gateway may not have seen the last one yet when the welcome left; it still delivers it.
    expect(resumed.frames[0]!.lastSeq).to.be.at.least(start.body.seq);
    const live = await postMessage(t.ingest, { phase: 'live' });
    await resumed.waitForSeq(live.body.seq);
    const got = resumed.seqs();
    expect(got[0]).to.equal(start.body.seq + 1);
    expect(got.every((s, i) => i === 0 || s > got[i - 1]!)).to.equal(true);
    for (const s of [...missed, live.body.seq]) expect(got).to.include(s);
    expect(got).to.not.include(start.body.seq);
    await resumed.close();
  });

  it('streams the full list as one JSON array ordered by seq', async () => {
    const { body } = await postMessage(t.ingest, { full: true });
    await waitFor('persisted', async () => (await fetch(`${t.query}/api/messages/${body.id}`)).status === 200);
    const res = await fetch(`${t.query}/api/messages`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    const all = (await res.json()) as { seq: number; id: string }[];
    expect(all.every((m, i) => i === 0 || m.seq > all[i - 1]!.seq)).to.equal(true);
    expect(all.some((m) => m.id === body.id)).to.equal(true);
  });

  it('pages with after and limit and a Link to the next page', async () => {
    const posted = await inParallel(5, 1, async (i) => (await postMessage(t.ingest, { page: i })).body);
    const lastId = posted[4]!.id;
    await waitFor('persisted', async () => (await fetch(`${t.query}/api/messages/${lastId}`)).status === 200);
    const from = posted[0]!.seq - 1;
    const res = await fetch(`${t.query}/api/messages?after=${from}&limit=2`);
    const page = (await res.json()) as { seq: number }[];
    expect(page.map((m) => m.seq)).to.deep.equal([posted[0]!.seq, posted[1]!.seq]);
    expect(res.headers.get('link')).to.match(new RegExp(`<[^>]*after=${posted[1]!.seq}[^>]*limit=2[^>]*>; rel="next"`));
  });

  it('serves /healthz, /readyz and /metrics on every service', async () => {
    for (const base of [t.ingest, t.query, ...t.realtime, ...t.persister]) {
      expect((await fetch(`${base}/healthz`)).status, `${base}/healthz`).to.equal(200);
      expect((await fetch(`${base}/readyz`)).status, `${base}/readyz`).to.equal(200);
      const metrics = await fetch(`${base}/metrics`);
      expect(metrics.status).to.equal(200);
      expect(await metrics.text()).to.match(/^# HELP /m);
    }
  });

  it('serves on ingest and query the OpenAPI document checked into the repository', async () => {
    const checkedIn = JSON.parse(readFileSync(join(ROOT, 'services/shared/api/openapi.json'), 'utf8')) as { openapi: string; paths: Record<string, unknown> };
    expect(checkedIn.openapi).to.match(/^3\.1/);
    expect(checkedIn.paths).to.include.keys('/api/messages', '/api/messages/{id}', '/api/dead-letters', '/sse', '/ws');
    for (const base of [t.ingest, t.query]) {
      expect(await (await fetch(`${base}/openapi.json`)).json(), base).to.deep.equal(checkedIn);
    }
  });

  it('serves the live page at / on the gateway', async () => {
    const res = await fetch(`${t.realtime[0]}/`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/html/);
    expect(await res.text()).to.match(/<title>Falcon/);
  });
});
