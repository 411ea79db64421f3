import { expect } from 'chai';
import { encodeEnvelope, newMessageId } from '@falcon/shared';
import { spawnService, type ServiceRun } from '../../../../test-support/service-process.js';
import { openSse, type SseClient, type SseRefusal } from '../../../../test-support/sse-client.js';
import { waitFor } from '../../../../scripts/stack.js';
import { metric, range, useGatewayFixture } from './gateway-fixture.js';

/** GET /sse of the compiled gateway, as it ships, against JetStream. */
describe('GET /sse against JetStream', function () {
  this.timeout(60_000);
  const fixture = useGatewayFixture();
  const gateway = (env: Record<string, string> = {}) => fixture.start(env);
  const gatewayLastSeq = (service: ServiceRun) => fixture.lastSeq(service);
  const publish = (count: number, payload?: (i: number) => string) => fixture.publish(count, payload);
  const publishPadded = (from: number, count: number, pad: string) =>
    Promise.all(Array.from({ length: count }, (_, i) => fixture.js.publish(fixture.nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), `{"i":${from + i},"pad":"${pad}"}`))));

  const stream = async (url: string, headers: Record<string, string> = {}): Promise<SseClient> => fixture.track(await openSse(url, headers));

  async function refused(url: string, headers: Record<string, string> = {}): Promise<SseRefusal> {
    const err = await openSse(url, headers).then(
      () => expect.fail('the stream was accepted'),
      (e: SseRefusal) => e,
    );
    return err;
  }

  it('opens an event stream: the welcome event first, then every message as id/event/data in seq order', async () => {
    await publish(3);
    const service = await gateway();
    const c = await stream(`${service.url}/sse`);
    expect(c.res.headers['content-type']).to.match(/^text\/event-stream/);
    expect(c.res.headers['cache-control']).to.equal('no-cache');
    expect(c.res.headers['x-accel-buffering']).to.equal('no');
    await waitFor('welcome', () => c.events.length > 0);
    expect(c.events[0]).to.deep.include({ type: 'welcome', id: '3' });
    expect(JSON.parse(c.events[0]!.data)).to.deep.equal({ type: 'welcome', lastSeq: 3, recovered: false });
    await publish(20);
    await c.waitForSeq(23);
    expect(c.seqs()).to.deep.equal(range(4, 23));
    for (const event of c.events.slice(1)) {
      const frame = JSON.parse(event.data) as { type: string; seq: number };
      expect(event.type).to.equal('message');
      expect(frame.type).to.equal('message');
      expect(event.id).to.equal(String(frame.seq));
    }
    expect((JSON.parse(c.events[1]!.data) as { payload: unknown }).payload).to.deep.equal({ i: 0 });
  });

  it('carries a payload stored with line breaks as data lines that join back to the same JSON', async () => {
    const service = await gateway();
    const c = await stream(`${service.url}/sse`);
    await waitFor('welcome', () => c.events.length > 0);
    await publish(1, () => '{\r\n  "lines": "a\\nb",\n  "n": 1\r}');
    await c.waitForSeq(1);
    expect((JSON.parse(c.events[1]!.data) as { payload: unknown }).payload).to.deep.equal({ lines: 'a\nb', n: 1 });
  });

  it('resumes from memory with Last-Event-ID, or with ?since=: no gap, no duplicate', async () => {
    const service = await gateway();
    await publish(20);
    await waitFor('gateway to see 20', async () => (await gatewayLastSeq(service)) === 20);
    const byHeader = await stream(`${service.url}/sse`, { 'last-event-id': '12' });
    // The header wins over a ?since= left in the URL from the first connection.
    const both = await stream(`${service.url}/sse?since=2`, { 'last-event-id': '15' });
    const byQuery = await stream(`${service.url}/sse?since=7`);
    await Promise.all([byHeader, both, byQuery].map((c) => c.waitForSeq(20)));
    expect(byHeader.events[0]).to.deep.include({ type: 'welcome', id: '12' });
    expect(JSON.parse(byHeader.events[0]!.data)).to.deep.equal({ type: 'welcome', lastSeq: 20, recovered: true });
    await publish(5);
    await Promise.all([byHeader, both, byQuery].map((c) => c.waitForSeq(25)));
    expect(byHeader.seqs()).to.deep.equal(range(13, 25));
    expect(both.seqs()).to.deep.equal(range(16, 25));
    expect(byQuery.seqs()).to.deep.equal(range(8, 25));
    expect(await metric(service.url, 'falcon_realtime_resumes_total', { source: 'memory' })).to.equal(3);
  });

  it('resumes from the stream beyond memory while new messages keep arriving, with no gap and no duplicate', async () => {
    await publish(300);
    const service = await gateway({ REALTIME_HISTORY_SIZE: '10' });
    await publish(100);
    await waitFor('gateway to see 400', async () => (await gatewayLastSeq(service)) === 400);
    const c = await stream(`${service.url}/sse`, { 'last-event-id': '5' });
    await publish(200);
    await c.waitForSeq(600);
    expect(JSON.parse(c.events[0]!.data)).to.include({ type: 'welcome', recovered: true });
    expect(c.seqs()).to.deep.equal(range(6, 600));
    expect(await metric(service.url, 'falcon_realtime_resumes_total', { source: 'stream' })).to.equal(1);
  });

  it('refuses a bad Last-Event-ID or since with a 400 problem', async () => {
    const service = await gateway();
    for (const [query, headers, path] of [
      ['?since=-1', {}, 'query:since'],
      ['?since=abc', {}, 'query:since'],
      ['', { 'last-event-id': '1.5' }, 'header:last-event-id'],
      ['?since=3', { 'last-event-id': 'x' }, 'header:last-event-id'],
    ] as const) {
      const err = await refused(`${service.url}/sse${query}`, headers);
      expect(err.status, `${query} ${JSON.stringify(headers)}`).to.equal(400);
      expect(err.headers['content-type']).to.equal('application/problem+json');
      expect((JSON.parse(err.body) as { errors: { path: string }[] }).errors[0]!.path).to.equal(path);
    }
  });

  it('keeps an idle stream open with comments', async () => {
    const service = await gateway({ REALTIME_SSE_HEARTBEAT_SECONDS: '1' });
    const c = await stream(`${service.url}/sse`);
    // One comment opens the stream; the heartbeat adds more while nothing is published.
    await waitFor('two heartbeats', () => c.parser.comments >= 3, 10_000);
    expect(c.seqs()).to.deep.equal([]);
  });

  it('cuts off a client that stops reading once it is past the backpressure limit, and counts it as slow', async () => {
    const service = await gateway({ REALTIME_MAX_BACKPRESSURE_BYTES: String(64 * 1024) });
    const stuck = await stream(`${service.url}/sse`);
    const healthy = await stream(`${service.url}/sse`);
    await waitFor('welcomes', () => stuck.events.length > 0 && healthy.events.length > 0);
    stuck.res.pause();
    const pad = 'z'.repeat(4000);
    let published = 0;
    // Until the kernel's socket buffers are full and the gateway's queue passes the limit.
    await waitFor(
      'the stuck stream to be cut off',
      async () => {
        await publishPadded(published, 200, pad);
        published += 200;
        return (await metric(service.url, 'falcon_realtime_slow_disconnects_total')) >= 1;
      },
      40_000,
      10,
    );
    stuck.res.resume();
    await stuck.ended;
    // The one that kept reading got everything, in order.
    await healthy.waitForSeq(published, 30_000);
    expect(healthy.seqs()).to.deep.equal(range(1, published));
    const seen = stuck.seqs();
    expect(seen).to.deep.equal(range(1, seen.length));
    expect(seen.length).to.be.lessThan(published);
    expect(await metric(service.url, 'falcon_realtime_clients')).to.equal(1);
  });

  it('cuts off a client that stops reading during a resume and counts it as slow', async () => {
    const service = await gateway({ REALTIME_HISTORY_SIZE: '5000', REALTIME_MAX_BACKPRESSURE_BYTES: String(64 * 1024), REALTIME_IDLE_TIMEOUT_SECONDS: '8' });
    const pad = 'y'.repeat(4000);
    for (let start = 0; start < 3000; start += 500) {
      await publishPadded(start, 500, pad);
    }
    await waitFor('gateway to see 3,000', async () => (await gatewayLastSeq(service)) === 3000, 30_000);
    const stuck = await stream(`${service.url}/sse`, { 'last-event-id': '0' });
    stuck.res.pause();
    await waitFor('the stuck stream to be cut off', async () => (await metric(service.url, 'falcon_realtime_slow_disconnects_total')) >= 1, 30_000, 100);
    stuck.res.resume();
    await stuck.ended;
    const seen = stuck.seqs();
    expect(seen).to.deep.equal(range(1, seen.length));
    expect(seen.length).to.be.lessThan(3000);
  });

  it('while it waits for its stream, asks an EventSource to come back (an empty stream with retry) and answers others 503', async () => {
    // A namespace with no stream: the gateway listens but does not follow anything yet.
    const service = await spawnService('realtime', { NATS_URL: fixture.nats.url, FALCON_NAMESPACE: `${fixture.nats.names.namespace}x` });
    fixture.services.push(service);
    await waitFor('the gateway to listen', async () => (await fetch(`${service.url}/healthz`).catch(() => undefined))?.status === 200, 20_000, 50);
    const eventSource = await fetch(`${service.url}/sse`, { headers: { accept: 'text/event-stream' } });
    expect(eventSource.status).to.equal(200);
    expect(eventSource.headers.get('content-type')).to.match(/^text\/event-stream/);
    expect(await eventSource.text()).to.equal('retry: 1000\n\n');
    const other = await fetch(`${service.url}/sse`);
    expect(other.status).to.equal(503);
    expect(other.headers.get('retry-after')).to.equal('1');
  });

  it('ends every stream on shutdown, so clients reconnect elsewhere', async () => {
    const service = await gateway();
    const c = await stream(`${service.url}/sse`);
    await waitFor('welcome', () => c.events.length > 0);
    fixture.services.pop();
    const [, code] = await Promise.all([c.ended, service.stop('SIGTERM')]);
    expect(code).to.equal(0);
    expect(c.res.complete, 'the chunked body was ended, not cut').to.equal(true);
  });

  it('measures the delivery lag of every message it hands to its clients', async () => {
    const service = await gateway();
    await publish(7);
    await waitFor('gateway to see 7', async () => (await gatewayLastSeq(service)) === 7);
    expect(await metric(service.url, 'falcon_realtime_delivery_lag_seconds_count')).to.equal(7);
    expect(await metric(service.url, 'falcon_realtime_delivery_lag_seconds_bucket', { le: '+Inf' })).to.equal(7);
  });
});
