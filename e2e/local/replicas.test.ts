import { expect } from 'chai';
import { inParallel, listAfter, postMessage } from '../client.js';
import { startLocalStack, wsUrl, type LocalStack } from '../target.js';
import { openClient } from '../../test-support/ws-client.js';
import { waitFor } from '../../scripts/stack.js';

/** Sum of a Prometheus counter's samples matching a label filter. */
async function counter(url: string, name: string, label: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && line.includes(label))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('two gateways and two persisters at once (local processes)', function () {
  this.timeout(300_000);
  let stack: LocalStack;

  before(async () => {
    stack = await startLocalStack({ replicas: { realtime: 2, persister: 2 } });
  });
  after(() => stack?.stop());

  it('each gateway delivers everything in the same order and the persisters store every message exactly once', async () => {
    expect(stack.realtime).to.have.length(2);
    expect(stack.persister).to.have.length(2);
    const clients = await Promise.all([...stack.realtime, ...stack.realtime].map((url) => openClient(wsUrl(url))));
    await waitFor('welcomes', () => clients.every((c) => c.frames.length > 0));

    const count = 5000;
    const accepted = await inParallel(count, 64, async (i) => {
      const { status, body } = await postMessage(stack.ingest, { i });
      expect(status).to.equal(202);
      return body;
    });
    const last = Math.max(...accepted.map((a) => a.seq));
    for (const c of clients) await c.waitForSeq(last, 60_000);
    const reference = clients[0]!.seqs();
    expect(reference).to.have.length(count);
    for (const c of clients) expect(c.seqs()).to.deep.equal(reference);
    expect(reference.every((s, i) => i === 0 || s === reference[i - 1]! + 1)).to.equal(true);

    await waitFor('all rows', async () => (await listAfter(stack.query, 0)).length >= count, 60_000, 250);
    const rows = await listAfter(stack.query, 0);
    expect(rows).to.have.length(count);
    expect(new Set(rows.map((r) => r.id))).to.deep.equal(new Set(accepted.map((a) => a.id)));

    // A batch's metric moves just after its commit, so poll until the counters settle.
    let stored: number[] = [];
    await waitFor('the stored counters to add up', async () => {
      stored = await Promise.all(stack.persister.map((url) => counter(url, 'falcon_persister_messages_total', 'outcome="stored"')));
      return stored.reduce((a, b) => a + b, 0) === count;
    }, 10_000, 100);
    for (const n of stored) expect(n, 'each persister replica took a share').to.be.greaterThan(0);
    await Promise.all(clients.map((c) => c.close()));
  });
});
