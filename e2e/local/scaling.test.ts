import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { expect } from 'chai';
import pg from 'pg';
import { encodeEnvelope, falconNames, newMessageId } from '@falcon/shared';
import { startLocalStack, type LocalStack } from '../target.js';
import { waitFor } from '../../scripts/stack.js';

/**
 * The persister's horizontal scaling, approximated with processes: the HPA (or KEDA) adds
 * replicas of the same Deployment, which here are more processes on the same durable consumer.
 */
describe('persister scaling: one, then three replicas on one durable consumer', function () {
  this.timeout(300_000);
  const BURST = 20_000;
  let stack: LocalStack;
  let nc: NatsConnection;
  let db: pg.Pool;

  before(async () => {
    stack = await startLocalStack({ replicas: { ingest: 1, persister: 0, query: 0, realtime: 0 } });
    nc = await connect({ servers: (process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222').split(',') });
    db = new pg.Pool({ connectionString: stack.databaseUrl });
  });
  after(async () => {
    await db?.end();
    await nc?.close();
    await stack?.stop();
  });

  async function burst(): Promise<void> {
    const js = jetstream(nc);
    const subject = falconNames(stack.stack.namespace).subject;
    const payload = `{"burst":true,"pad":"${'x'.repeat(200)}"}`;
    const acks = [];
    for (let i = 0; i < BURST; i++) {
      acks.push(js.publish(subject, encodeEnvelope(newMessageId(), new Date().toISOString(), payload)));
      if (acks.length === 1000) await Promise.all(acks.splice(0));
    }
    await Promise.all(acks);
  }

  async function drainedAfterBurst(replicas: number, expectedRows: number): Promise<number> {
    const jsm = await jetstreamManager(nc);
    const names = falconNames(stack.stack.namespace);
    const started = performance.now();
    await burst();
    await waitFor(
      'the consumer to drain',
      async () => {
        const info = await jsm.consumers.info(names.stream, names.persisterConsumer);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      240_000,
      50,
    );
    const seconds = (performance.now() - started) / 1000;
    const { rows } = await db.query('SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d FROM messages');
    expect(rows[0]).to.deep.equal({ n: expectedRows, d: expectedRows });
    console.log(`      ${replicas} replica(s): ${BURST} messages stored and the consumer drained in ${seconds.toFixed(2)} s (${Math.round(BURST / seconds)} msg/s)`);
    return seconds;
  }

  it('stores every message of each burst exactly once and drains the pending count', async () => {
    await stack.stack.start('persister', 1);
    await drainedAfterBurst(1, BURST);
    await Promise.all([stack.stack.start('persister', 2), stack.stack.start('persister', 3)]);
    await drainedAfterBurst(3, 2 * BURST);
  });
});
