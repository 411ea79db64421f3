import * as hdr from 'hdr-histogram-js';
import { expect } from 'chai';
import { inParallel, postMessage } from '../client.js';
import { startLocalStack, wsUrl, type LocalStack } from '../target.js';
import { openClient, type TestClient } from '../../test-support/ws-client.js';
import { startTcpProxy, type TcpProxy } from '../../test-support/tcp-proxy.js';
import { waitFor } from '../../scripts/stack.js';

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line ? Number(line.split(' ').pop()) : NaN;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('realtime gateway under pressure (local processes)', function () {
  this.timeout(300_000);

  describe('a client that never reads', () => {
    let stack: LocalStack;
    before(async () => {
      stack = await startLocalStack({ replicas: { persister: 1, realtime: 1 }, env: { REALTIME_MAX_BACKPRESSURE_BYTES: String(256 * 1024) } });
    });
    after(() => stack?.stop());

    it('is closed with 1013 past its backlog limit while memory stays bounded and others get everything', async () => {
      const gateway = stack.realtime[0]!;
      const slow = await openClient(wsUrl(gateway));
      const healthy = await openClient(wsUrl(gateway));
      await waitFor('welcomes', () => slow.frames.length > 0 && healthy.frames.length > 0);
      // Stop reading: the kernel buffers fill, then the gateway's own buffer for this socket.
      (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
      const rssBefore = await metric(gateway, 'process_resident_memory_bytes');
      // Read again as soon as it is cut off: a client that reads nothing for tens of seconds
      // after the close frame is cut by uWS' closing timeout without seeing it (1006).
      const cut = waitFor('the slow client to be cut off', async () => (await metric(gateway, 'falcon_realtime_slow_disconnects_total')) >= 1, 120_000, 100).then(() =>
        (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume(),
      );
      const pad = 'x'.repeat(8 * 1024);
      const accepted = await inParallel(3000, 32, async (i) => (await postMessage(stack.ingest, { i, pad })).body.seq);
      const last = Math.max(...accepted);
      await healthy.waitForSeq(last, 60_000);
      await cut;
      const { code } = await slow.closed;
      expect(code).to.equal(1013);
      const rssAfter = await metric(gateway, 'process_resident_memory_bytes');
      console.log(`      gateway RSS ${(rssBefore / 2 ** 20).toFixed(1)} MiB -> ${(rssAfter / 2 ** 20).toFixed(1)} MiB while ${((3000 * pad.length) / 2 ** 20).toFixed(0)} MiB went to clients`);
      expect(rssAfter - rssBefore, 'gateway memory growth').to.be.lessThan(96 * 2 ** 20);
      const seqs = healthy.seqs();
      expect(seqs).to.deep.equal(range(seqs[0]!, last));
      expect(await metric(gateway, 'falcon_realtime_clients')).to.equal(1);
      await healthy.close();
    });
  });

  describe('NATS cut off under the gateway', () => {
    let stack: LocalStack;
    let proxy: TcpProxy;
    before(async () => {
      proxy = await startTcpProxy('127.0.0.1', 4222);
      stack = await startLocalStack({ natsUrl: proxy.url('nats'), replicas: { persister: 1, realtime: 1 } });
    });
    after(async () => {
      await stack?.stop();
      await proxy?.close();
    });

    it('reconnects by itself and its clients end up with no gap and no duplicate', async () => {
      const client = await openClient(wsUrl(stack.realtime[0]!));
      await waitFor('welcome', () => client.frames.length > 0);
      const first = (await postMessage(stack.ingest, { phase: 'before' })).body.seq;
      await client.waitForSeq(first);
      proxy.cut();
      await waitFor('ingest to notice', async () => (await fetch(`${stack.ingest}/readyz`)).status === 503, 20_000, 100);
      const refused = await postMessage(stack.ingest, { phase: 'during' });
      expect(refused.status).to.equal(503);
      expect(refused.res.headers.get('retry-after')).to.match(/^\d+$/);
      proxy.restore();
      await waitFor('ingest to recover', async () => (await fetch(`${stack.ingest}/readyz`)).status === 200, 30_000, 100);
      const after = [];
      for (let i = 0; i < 20; i++) after.push((await postMessage(stack.ingest, { phase: 'after', i })).body.seq);
      await client.waitForSeq(after[19]!, 30_000);
      expect(client.seqs()).to.deep.equal(range(first, after[19]!));
      await client.close();
    });
  });

  describe('1,000 clients on one gateway at 100 messages a second', () => {
    let stack: LocalStack;
    before(async () => {
      stack = await startLocalStack({ replicas: { persister: 1, realtime: 1 } });
    });
    after(() => stack?.stop());

    it('delivers every message to every client', async () => {
      const url = wsUrl(stack.realtime[0]!);
      const clients: TestClient[] = await inParallel(1000, 50, () => openClient(url));
      await waitFor('1,000 welcomes', () => clients.every((c) => c.frames.length > 0), 30_000);
      const count = 500;
      const seqs: number[] = [];
      const started = performance.now();
      for (let i = 0; i < count; i++) {
        // Paced at 100 per second from the start, not after each answer, so slow answers do not lower the rate.
        const due = started + i * 10;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        seqs.push((await postMessage(stack.ingest, { i })).body.seq);
      }
      const last = seqs[count - 1]!;
      await waitFor('every client to have every message', () => clients.every((c) => c.arrivals.has(last)), 60_000, 100);
      const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
      for (const c of clients) {
        const got = c.seqs();
        expect(got.slice(-count)).to.deep.equal(seqs);
        for (const frame of c.frames) {
          if (frame.type !== 'message') continue;
          const arrival = performance.timeOrigin + c.arrivals.get(frame.seq!)!;
          histogram.recordValue(Math.max(1, Math.round((arrival - Date.parse(frame.receivedAt!)) * 1000)));
        }
      }
      console.log(`      ${clients.length * count} deliveries; receivedAt -> client latency p50 ${(histogram.getValueAtPercentile(50) / 1000).toFixed(1)} ms, p99 ${(histogram.getValueAtPercentile(99) / 1000).toFixed(1)} ms (clients and services share 2 cores)`);
      await Promise.all(clients.map((c) => c.close()));
    });
  });

  describe('graceful shutdown', () => {
    let stack: LocalStack;
    before(async () => {
      stack = await startLocalStack({ replicas: { persister: 1, realtime: 1 } });
    });
    after(() => stack?.stop());

    it('tells clients 1001 and exits 0 on SIGTERM', async () => {
      const clients = await Promise.all([1, 2, 3].map(() => openClient(wsUrl(stack.realtime[0]!))));
      await waitFor('welcomes', () => clients.every((c) => c.frames.length > 0));
      const code = await stack.stack.kill('realtime', 'SIGTERM');
      expect(code).to.equal(0);
      for (const c of clients) expect((await c.closed).code).to.equal(1001);
    });
  });
});
