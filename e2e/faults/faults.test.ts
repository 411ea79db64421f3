import { jetstream } from '@nats-io/jetstream';
import { connect as connectNats } from '@nats-io/transport-node';
import { expect } from 'chai';
import { falconNames } from '@falcon/shared';
import { listAfter } from '../client.js';
import { startLocalStack, wsUrl, type LocalStack } from '../target.js';
import { startTraffic, type TrafficResult } from '../traffic.js';
import { openResumingClient, type ResumingClient } from '../../test-support/resuming-client.js';
import { startTcpProxy, type TcpProxy } from '../../test-support/tcp-proxy.js';
import { waitFor } from '../../scripts/stack.js';

/**
 * The fault suite: each case runs real traffic through a fresh local stack (its own stream
 * namespace and database), breaks something, and ends with a full reconciliation: every
 * message that got a 202 is in Postgres exactly once and was pushed to a connected client,
 * and nothing else is stored.
 */
async function reconcile(stack: LocalStack, result: TrafficResult, client: ResumingClient, label: string): Promise<void> {
  const expected = result.accepted;
  const seqs = new Set([...expected.values()].map((a) => a.seq));
  const last = Math.max(...seqs);
  await waitFor(`${label}: the client to see seq ${last}`, () => client.seqs.includes(last), 90_000, 100);
  let rows: Awaited<ReturnType<typeof listAfter>> = [];
  await waitFor(
    `${label}: ${expected.size} rows`,
    async () => {
      rows = await listAfter(stack.query, 0);
      return rows.length >= expected.size;
    },
    90_000,
    250,
  );
  rows = await listAfter(stack.query, 0);
  expect(rows.length, 'rows stored').to.equal(expected.size);
  const ids = new Set([...expected.values()].map((a) => a.id));
  expect(new Set(rows.map((r) => r.id)), 'stored ids are exactly the accepted ids').to.deep.equal(ids);
  const pushed = client.seqs;
  expect(new Set(pushed).size, 'no seq pushed twice').to.equal(pushed.length);
  expect(pushed.every((s, i) => i === 0 || s > pushed[i - 1]!), 'pushed in seq order').to.equal(true);
  const pushedSet = new Set(pushed);
  expect([...seqs].filter((s) => !pushedSet.has(s)), 'accepted but never pushed').to.deep.equal([]);
  console.log(`      ${label}: ${expected.size} accepted = ${rows.length} stored once = ${[...seqs].filter((s) => pushedSet.has(s)).length} pushed; responses ${JSON.stringify(result.statuses)}, retries ${result.retries}, client reconnects ${client.reconnects}`);
}

async function status(url: string): Promise<number> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2_000) })).status;
  } catch {
    return 0;
  }
}

const outage = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('fault suite', function () {
  this.timeout(600_000);
  let stack: LocalStack | undefined;
  let proxy: TcpProxy | undefined;
  let client: ResumingClient | undefined;

  afterEach(async () => {
    client?.close();
    await stack?.stop();
    await proxy?.close();
    stack = undefined;
    proxy = undefined;
  });

  it('persister killed with SIGKILL in the middle of a 20,000-message burst, then restarted', async () => {
    // A short ack wait so messages the dead replica held come back in seconds, not 30 s.
    stack = await startLocalStack({ env: { PERSISTER_ACK_WAIT_MS: '3000' } });
    const s = stack;
    client = openResumingClient(() => wsUrl(s.realtime[0]!));
    await client.ready;
    const traffic = startTraffic(() => s.ingest, { concurrency: 64, prefix: 'kill', max: 20_000 });
    await waitFor('traffic to be under way', () => traffic.acceptedCount() >= 5_000, 60_000, 20);
    expect(await s.stack.kill('persister', 'SIGKILL')).to.equal('SIGKILL');
    await s.stack.start('persister');
    const result = await traffic.finished();
    expect(result.accepted.size).to.equal(20_000);
    await reconcile(s, result, client, 'SIGKILL persister');
  });

  it('Postgres unreachable for 20 seconds during traffic: the persister backs off, reports 503 and catches up', async () => {
    proxy = await startTcpProxy('127.0.0.1', 5432);
    const base = new URL(process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    base.host = `127.0.0.1:${proxy.port}`;
    stack = await startLocalStack({ databaseUrl: base.toString() });
    const s = stack;
    client = openResumingClient(() => wsUrl(s.realtime[0]!));
    await client.ready;
    const traffic = startTraffic(() => s.ingest, { concurrency: 16, prefix: 'pg' });
    await waitFor('traffic', () => traffic.acceptedCount() >= 500, 30_000, 20);
    proxy.cut();
    await waitFor('persister /readyz to turn 503', async () => (await status(`${s.persister[0]}/readyz`)) === 503, 30_000, 100);
    expect(await status(`${s.query}/readyz`)).to.equal(503);
    const atCut = traffic.acceptedCount();
    await outage(20_000);
    expect(traffic.acceptedCount(), 'ingest kept accepting while Postgres was away').to.be.greaterThan(atCut);
    proxy.restore();
    await waitFor('persister /readyz to recover', async () => (await status(`${s.persister[0]}/readyz`)) === 200, 60_000, 100);
    await reconcile(s, await traffic.stop(), client, 'Postgres outage 20 s');
  });

  it('NATS unreachable: ingest answers 503 with Retry-After at once, never 202, and recovers by itself', async () => {
    proxy = await startTcpProxy('127.0.0.1', 4222);
    stack = await startLocalStack({ natsUrl: proxy.url('nats') });
    const s = stack;
    client = openResumingClient(() => wsUrl(s.realtime[0]!));
    await client.ready;
    const traffic = startTraffic(() => s.ingest, { concurrency: 16, prefix: 'nats' });
    await waitFor('traffic', () => traffic.acceptedCount() >= 500, 30_000, 20);
    proxy.cut();
    await waitFor('ingest /readyz to turn 503', async () => (await status(`${s.ingest}/readyz`)) === 503, 30_000, 50);
    const started = performance.now();
    const res = await fetch(`${s.ingest}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"probe":true}' });
    const ms = performance.now() - started;
    expect(res.status).to.equal(503);
    expect(res.headers.get('retry-after')).to.match(/^\d+$/);
    console.log(`      a POST while NATS was cut off was answered 503 in ${ms.toFixed(1)} ms`);
    const atCut = traffic.acceptedCount();
    await outage(5_000);
    proxy.restore();
    await waitFor('ingest /readyz to recover', async () => (await status(`${s.ingest}/readyz`)) === 200, 60_000, 100);
    await waitFor('traffic to flow again', () => traffic.acceptedCount() > atCut + 200, 60_000, 50);
    await reconcile(s, await traffic.stop(), client, 'NATS outage 5 s');
  });

  it('SIGTERM to each service under load: in-flight work finishes, nothing lost or duplicated', async () => {
    stack = await startLocalStack();
    const s = stack;
    client = openResumingClient(() => wsUrl(s.realtime[0]!));
    await client.ready;
    const traffic = startTraffic(() => s.ingest, { concurrency: 32, prefix: 'term' });
    for (const service of ['ingest', 'persister', 'realtime'] as const) {
      const before = traffic.acceptedCount();
      await waitFor('traffic', () => traffic.acceptedCount() >= before + 1000, 60_000, 20);
      expect(await s.stack.kill(service, 'SIGTERM'), `${service} exit code`).to.equal(0);
      await s.stack.start(service);
    }
    const before = traffic.acceptedCount();
    await waitFor('traffic after the restarts', () => traffic.acceptedCount() >= before + 1000, 60_000, 20);
    await reconcile(s, await traffic.stop(), client, 'SIGTERM ingest, persister, realtime');
  });

  it('a poison message on the stream is dead-lettered, listed and counted, and blocks nothing behind it', async () => {
    stack = await startLocalStack();
    const s = stack;
    client = openResumingClient(() => wsUrl(s.realtime[0]!));
    await client.ready;
    const traffic = startTraffic(() => s.ingest, { concurrency: 8, prefix: 'poison' });
    await waitFor('traffic', () => traffic.acceptedCount() >= 200, 30_000, 20);
    // A foreign publisher writes something that is not a Falcon envelope onto the subject.
    const nc = await connectNats({ servers: (process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222').split(',') });
    const poison = await jetstream(nc).publish(falconNames(s.stack.namespace).subject, '{"not":"an envelope"}');
    await nc.close();
    const before = traffic.acceptedCount();
    await waitFor('traffic behind the poison', () => traffic.acceptedCount() >= before + 200, 30_000, 20);
    const result = await traffic.stop();
    let dead: { seq: number; reason: string; envelope: string }[] = [];
    await waitFor('the dead letter to be listed', async () => {
      dead = (await (await fetch(`${s.query}/api/dead-letters`)).json()) as typeof dead;
      return dead.length === 1;
    });
    expect(dead[0]).to.include({ seq: poison.seq, envelope: '{"not":"an envelope"}' });
    expect(dead[0]!.reason).to.match(/undecodable/);
    // The metric moves just after the dead letter is committed.
    await waitFor('the dead-letter metric', async () => /falcon_persister_messages_total\{[^}]*outcome="dead_lettered"[^}]*\} 1/.test(await (await fetch(`${s.persister[0]}/metrics`)).text()), 10_000, 100);
    await reconcile(s, result, client, 'poison message');
    expect(client.seqs, 'browsers never see a frame that is not a Falcon message').to.not.include(poison.seq);
  });

  it('a client that retries every request after a timeout, with the same Idempotency-Key: one row per message', async () => {
    stack = await startLocalStack();
    const s = stack;
    client = openResumingClient(() => wsUrl(s.realtime[0]!));
    await client.ready;
    // A 4 ms client timeout: most first attempts are abandoned after ingest accepted them.
    const result = await startTraffic(() => s.ingest, { concurrency: 16, prefix: 'retry', max: 1_000, timeoutMs: 4 }).finished();
    expect(result.accepted.size).to.equal(1_000);
    expect(result.retries).to.be.greaterThan(0);
    expect([...result.accepted.values()].some((a) => a.duplicate), 'some retries found the first attempt already stored').to.equal(true);
    await reconcile(s, result, client, 'retries after timeouts');
  });
});
