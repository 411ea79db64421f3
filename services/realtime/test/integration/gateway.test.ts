import { expect } from 'chai';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { encodeEnvelope, messageFrameSchema, newMessageId, welcomeFrameSchema } from '@falcon/shared';
import { spawnService, type ServiceRun } from '../../../../test-support/service-process.js';
import { openClient, type TestClient } from '../../../../test-support/ws-client.js';
import { waitFor } from '../../../../scripts/stack.js';
import { mintToken } from '../../../../test-support/tokens.js';
import { metric, range, useGatewayFixture } from './gateway-fixture.js';

/** The compiled gateway as its own process, as it ships. */
describe('realtime gateway against JetStream', function () {
  this.timeout(60_000);
  const fixture = useGatewayFixture();
  const { services } = fixture;

  async function gateway(env: Record<string, string> = {}): Promise<string> {
    const service = await fixture.start(env);
    return `ws://127.0.0.1:${service.port}/ws`;
  }

  const gatewayLastSeq = (service: ServiceRun) => fixture.lastSeq(service);
  const client = async (url: string): Promise<TestClient> => fixture.track(await openClient(url));
  const publish = (count: number) => fixture.publish(count);

  it('greets with welcome and then pushes every new message in seq order', async () => {
    await publish(3);
    const url = await gateway();
    const c = await client(url);
    await waitFor('welcome', () => c.frames.length > 0);
    expect(c.frames[0]).to.deep.equal({ type: 'welcome', lastSeq: 3, recovered: false });
    await publish(50);
    await c.waitForSeq(53);
    expect(c.seqs()).to.deep.equal(range(4, 53));
    const frame = c.frames[1]!;
    expect(Object.keys(frame)).to.deep.equal(['type', 'seq', 'id', 'receivedAt', 'payload']);
    // Every frame matches the contract's JSON Schemas.
    const ajv = new Ajv({ allErrors: true });
    (addFormatsModule as unknown as (a: Ajv) => Ajv)(ajv);
    expect(ajv.validate(welcomeFrameSchema, c.frames[0]), ajv.errorsText()).to.equal(true);
    for (const f of c.frames.slice(1)) expect(ajv.validate(messageFrameSchema, f), ajv.errorsText()).to.equal(true);
    expect(frame.payload).to.deep.equal({ i: 0 });
  });

  it('resumes from memory with since: no gap, no duplicate', async () => {
    const url = await gateway();
    await publish(20);
    await waitFor('gateway to see 20', async () => (await gatewayLastSeq(services[0]!)) === 20);
    const c = await client(`${url}?since=12`);
    await c.waitForSeq(20);
    expect(c.frames[0]).to.deep.equal({ type: 'welcome', lastSeq: 20, recovered: true });
    await publish(5);
    await c.waitForSeq(25);
    expect(c.seqs()).to.deep.equal(range(13, 25));
  });

  it('replays from the stream beyond memory, while new messages keep arriving, with no gap and no duplicate', async () => {
    await publish(300);
    const url = await gateway({ REALTIME_HISTORY_SIZE: '10' });
    await publish(100);
    await waitFor('gateway to see 400', async () => (await gatewayLastSeq(services[0]!)) === 400);
    const c = await client(`${url}?since=5`);
    const more = publish(200);
    await more;
    await c.waitForSeq(600);
    expect(c.frames[0]).to.include({ type: 'welcome', recovered: true });
    expect(c.seqs()).to.deep.equal(range(6, 600));
  });

  it('says recovered false when the stream no longer holds since + 1, then goes live', async () => {
    await publish(30);
    await fixture.jsm.streams.purge(fixture.nats.names.stream, { keep: 10 });
    const url = await gateway();
    const c = await client(`${url}?since=5`);
    await waitFor('welcome', () => c.frames.length > 0);
    expect(c.frames[0]).to.deep.equal({ type: 'welcome', lastSeq: 30, recovered: false });
    await publish(2);
    await c.waitForSeq(32);
    expect(c.seqs()).to.deep.equal([31, 32]);
  });

  it('delivers the identical sequence through two replicas', async () => {
    const a = await client(await gateway());
    const b = await client(await gateway());
    await publish(200);
    await a.waitForSeq(200);
    await b.waitForSeq(200);
    expect(a.seqs()).to.deep.equal(range(1, 200));
    expect(b.seqs()).to.deep.equal(a.seqs());
    expect(b.frames.slice(1)).to.deep.equal(a.frames.slice(1));
  });

  it('refuses a bad since with a 400 problem', async () => {
    const url = await gateway();
    for (const since of ['-1', 'abc', '1.5']) {
      let status = 0;
      await openClient(`${url}?since=${since}`).catch((err: { status: number }) => {
        status = err.status;
      });
      expect(status, since).to.equal(400);
    }
  });

  it('serves the live page, its config, and the probes', async () => {
    const ws = await gateway();
    const http = ws.replace('ws://', 'http://').replace('/ws', '');
    const page = await fetch(`${http}/`);
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.match(/text\/html/);
    expect(await page.text()).to.contain('Falcon');
    expect((await fetch(`${http}/app.js`)).status).to.equal(200);
    expect(await (await fetch(`${http}/config.json`)).json()).to.deep.equal({ ingestUrl: 'http://127.0.0.1:8081', queryUrl: 'http://127.0.0.1:8082' });
    expect((await fetch(`${http}/healthz`)).status).to.equal(200);
    expect((await fetch(`${http}/readyz`)).status).to.equal(200);
    expect(await (await fetch(`${http}/metrics`)).text()).to.contain('falcon_realtime_clients');
    const missing = await fetch(`${http}/nope`);
    expect(missing.status).to.equal(404);
    expect(missing.headers.get('content-type')).to.equal('application/problem+json');
  });

  it('serves the page under its Content-Security-Policy and hands it REALTIME_PAGE_TOKEN', async () => {
    const token = await mintToken({ sub: 'live-page', scope: 'messages:read messages:subscribe' });
    const http = (await gateway({ REALTIME_PAGE_TOKEN: token, REALTIME_PUBLIC_QUERY_URL: 'https://query.example.com' })).replace('ws://', 'http://').replace('/ws', '');
    const page = await fetch(`${http}/`);
    await page.arrayBuffer();
    expect(page.headers.get('content-security-policy')).to.contain("script-src 'self'").and.to.contain('https://query.example.com');
    expect(page.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(page.headers.get('referrer-policy')).to.equal('no-referrer');
    expect(await (await fetch(`${http}/config.json`)).json()).to.deep.equal({ ingestUrl: 'http://127.0.0.1:8081', queryUrl: 'https://query.example.com', token });
  });

  it('refuses to start with a page token that could post, without printing it', async () => {
    const token = await mintToken({ sub: 'live-page', scope: 'messages:read messages:subscribe messages:write' });
    const run = await spawnService('realtime', { NATS_URL: fixture.nats.url, FALCON_NAMESPACE: fixture.nats.names.namespace, REALTIME_PAGE_TOKEN: token });
    expect(await run.exited).to.not.equal(0);
    const output = JSON.stringify(run.logs) + run.stderr.join('\n');
    expect(output).to.contain('REALTIME_PAGE_TOKEN').and.to.contain('messages:write');
    expect(output).not.to.contain(token);
  });

  it('closes clients with 1001 on shutdown so they reconnect elsewhere', async () => {
    const c = await client(await gateway());
    await waitFor('welcome', () => c.frames.length > 0);
    const service = services.pop()!;
    const [{ code }, exitCode] = await Promise.all([c.closed, service.stop('SIGTERM')]);
    expect(code).to.equal(1001);
    expect(exitCode).to.equal(0);
  });

  it('pushes only what the persister would store: a foreign message whose payload is not JSON is skipped, live and on resume', async () => {
    const url = await gateway();
    const live = await client(url);
    await waitFor('welcome', () => live.frames.length > 0);
    await publish(1);
    const foreign = await fixture.js.publish(fixture.nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), '{"broken": '));
    const notObject = await fixture.js.publish(fixture.nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), '"just text"'));
    await publish(1);
    await live.waitForSeq(4);
    expect(live.seqs()).to.deep.equal([1, 4]);
    expect([foreign.seq, notObject.seq]).to.deep.equal([2, 3]);
    // From memory and from the stream (a gateway with no memory), the same set.
    const fromMemory = await client(`${url}?since=0`);
    await fromMemory.waitForSeq(4);
    expect(fromMemory.seqs()).to.deep.equal([1, 4]);
    const replayed = await client(`${await gateway({ REALTIME_HISTORY_SIZE: '0' })}?since=0`);
    await replayed.waitForSeq(4);
    expect(replayed.seqs()).to.deep.equal([1, 4]);
  });

  it('delivers a resume of 10,000 frames of 1.1 KB from memory to a fast reader, complete and in order', async () => {
    const url = await gateway({ REALTIME_HISTORY_SIZE: '20000' });
    const pad = 'x'.repeat(1100);
    for (let start = 0; start < 10_000; start += 500) {
      await Promise.all(
        Array.from({ length: 500 }, (_, i) => fixture.js.publish(fixture.nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), `{"i":${start + i},"pad":"${pad}"}`))),
      );
    }
    await waitFor('gateway to see 10,000', async () => (await gatewayLastSeq(services[0]!)) === 10_000, 30_000);
    const reader = await client(`${url}?since=0`);
    await reader.waitForSeq(10_000, 30_000);
    expect(reader.seqs()).to.deep.equal(range(1, 10_000));
    expect(reader.frames[0]).to.deep.equal({ type: 'welcome', lastSeq: 10_000, recovered: true });
    expect(reader.ws.readyState).to.equal(reader.ws.OPEN);
    expect(await metric(services[0]!.url, 'falcon_realtime_slow_disconnects_total')).to.equal(0);
  });

  it('closes a client that stops reading during a resume with 1013 and counts it as slow', async () => {
    const url = await gateway({ REALTIME_HISTORY_SIZE: '5000', REALTIME_MAX_BACKPRESSURE_BYTES: String(64 * 1024), REALTIME_IDLE_TIMEOUT_SECONDS: '8' });
    const pad = 'y'.repeat(4000);
    for (let start = 0; start < 3000; start += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => fixture.js.publish(fixture.nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), `{"i":${start + i},"pad":"${pad}"}`))));
    }
    await waitFor('gateway to see 3,000', async () => (await gatewayLastSeq(services[0]!)) === 3000, 30_000);
    const stuck = await client(`${url}?since=0`);
    const socket = (stuck.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    await waitFor('the stuck client to be cut off', async () => (await metric(services[0]!.url, 'falcon_realtime_slow_disconnects_total')) >= 1, 30_000, 100);
    socket.resume();
    const { code } = await stuck.closed;
    expect(code).to.equal(1013);
  });
});
