/**
 * GET /sse through the contract: an EventSource-style client (test-support/sse-client.ts) on the
 * suite's target, and on a local stack of its own whose gateway is restarted under traffic.
 */
import { expect } from 'chai';
import { postMessage } from '../client.js';
import { sseUrl, startLocalStack, target, type LocalStack, type Target } from '../target.js';
import { startTraffic } from '../traffic.js';
import { openResumingSse, openSse } from '../../test-support/sse-client.js';
import { waitFor } from '../../scripts/stack.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('GET /sse (Server-Sent Events)', function () {
  this.timeout(120_000);
  let t: Target;
  before(async () => {
    t = await target();
  });

  it('opens with the welcome event, then every new message as id {seq}, event message, data {frame}', async () => {
    const stream = await openSse(sseUrl(t.realtime[0]!));
    try {
      expect(stream.res.headers['content-type']).to.match(/^text\/event-stream/);
      expect(stream.res.headers['cache-control']).to.equal('no-cache');
      await waitFor('welcome', () => stream.events.length > 0);
      expect(stream.events[0]!.type).to.equal('welcome');
      const welcome = JSON.parse(stream.events[0]!.data) as { type: string; lastSeq: number; recovered: boolean };
      expect(welcome).to.have.keys('type', 'lastSeq', 'recovered');
      expect(welcome.type).to.equal('welcome');

      const payloads = [{ sse: 1, text: 'é😀' }, { sse: 2, nested: { list: [1, null, true] } }];
      const accepted = [];
      for (const payload of payloads) accepted.push((await postMessage(t.ingest, payload)).body);
      await stream.waitForSeq(accepted[1]!.seq);
      const publisher = t.publisher === undefined ? {} : { publisher: t.publisher };
      for (const [i, body] of accepted.entries()) {
        const event = stream.events.find((e) => e.type === 'message' && e.id === String(body.seq))!;
        expect(JSON.parse(event.data)).to.deep.equal({ type: 'message', id: body.id, seq: body.seq, receivedAt: body.receivedAt, ...publisher, payload: payloads[i] });
      }
      const seqs = stream.seqs();
      expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'in seq order').to.equal(true);
    } finally {
      await stream.close();
    }
  });

  it('resumes with Last-Event-ID: every message after it, then live', async () => {
    const first = await postMessage(t.ingest, { phase: 'before' });
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push((await postMessage(t.ingest, { phase: 'away', i })).body.seq);
    const stream = await openSse(sseUrl(t.realtime[0]!), { 'last-event-id': String(first.body.seq) });
    try {
      await waitFor('welcome', () => stream.events.length > 0);
      expect(JSON.parse(stream.events[0]!.data)).to.include({ type: 'welcome', recovered: true });
      const live = await postMessage(t.ingest, { phase: 'live' });
      await stream.waitForSeq(live.body.seq);
      const got = stream.seqs();
      expect(got[0]).to.equal(first.body.seq + 1);
      expect(got.every((s, i) => i === 0 || s > got[i - 1]!)).to.equal(true);
      for (const s of [...missed, live.body.seq]) expect(got).to.include(s);
    } finally {
      await stream.close();
    }
  });

  it('refuses a Last-Event-ID that is not a seq with a 400 problem', async () => {
    const err = await openSse(sseUrl(t.realtime[0]!), { 'last-event-id': 'yesterday' }).then(
      () => expect.fail('the stream was accepted'),
      (e: { status: number; headers: Record<string, string> }) => e,
    );
    expect(err.status).to.equal(400);
    expect(err.headers['content-type']).to.equal('application/problem+json');
  });
});

describe('GET /sse across gateway restarts (own local stack)', function () {
  this.timeout(240_000);
  let stack: LocalStack;

  before(async () => {
    stack = await startLocalStack({ replicas: { realtime: 1, persister: 1 } });
  });

  after(async () => {
    await stack?.stop();
  });

  it('an EventSource-style client reconnecting with Last-Event-ID misses nothing and gets nothing twice', async () => {
    const client = openResumingSse(() => sseUrl(stack.realtime[0]!));
    try {
      await client.ready;
      const from = (client.welcomes[0]!.lastSeq as number) + 1;
      const traffic = startTraffic(() => stack.ingest, { concurrency: 4, prefix: 'sse-restart' });
      // A drain (SIGTERM ends the stream) and a crash (SIGKILL drops it), each under traffic.
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        const seen = client.seqs.length;
        await waitFor('messages before the restart', () => client.seqs.length >= seen + 20, 30_000);
        await stack.stack.kill('realtime', signal);
        const before = traffic.acceptedCount();
        await waitFor('messages accepted while the gateway is down', () => traffic.acceptedCount() >= before + 20, 30_000);
        await stack.stack.start('realtime');
      }
      const result = await traffic.stop();
      const seqs = [...result.accepted.values()].map((a) => a.seq);
      const last = Math.max(...seqs);
      await waitFor(`seq ${last} through the restarted gateway`, () => client.seqs.includes(last), 60_000);
      expect(client.reconnects).to.be.at.least(2);
      // Only this traffic writes to this stack: the client saw exactly every seq, once, in order.
      expect(client.seqs).to.deep.equal(range(from, last));
      for (const seq of seqs) expect(client.seqs).to.include(seq);
      expect(client.welcomes.slice(1).every((w) => w.recovered === true), 'every resume recovered').to.equal(true);
    } finally {
      client.close();
    }
  });
});
