/**
 * Child process: the simplest persister, the baseline Falcon's persister is held to. Pulls from
 * a durable consumer, and while one batch is being written collects the next (up to `batch`
 * messages); each batch is one multi-row INSERT ... ON CONFLICT DO NOTHING, and its messages
 * are acked after the statement returns. One writer, no dead letters, no metrics.
 *   argv: natsUrl stream subject consumer databaseUrl table batch
 */
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';

const [natsUrl, stream, subject, durable, databaseUrl, table, batchText] = process.argv.slice(2) as string[];
const batchSize = Number(batchText);
const nc = await connect({ servers: natsUrl!.split(',') });
const jsm = await jetstreamManager(nc);
await jsm.consumers.add(stream!, { durable_name: durable, ack_policy: AckPolicy.Explicit, filter_subject: subject, max_ack_pending: 20_000 });
const consumer = await jetstream(nc).consumers.get(stream!, durable!);
const db = new pg.Client({ connectionString: databaseUrl, application_name: 'simple-persister' });
await db.connect();

const waiting: JsMsg[] = [];
let writing = false;

async function write(): Promise<void> {
  writing = true;
  while (waiting.length > 0) {
    const batch = waiting.splice(0, batchSize);
    const params: unknown[] = [];
    const values: string[] = [];
    for (const m of batch) {
      const envelope = m.json<{ id: string; receivedAt: string; payload: unknown }>();
      const n = params.push(m.seq, envelope.id, envelope.receivedAt, JSON.stringify(envelope.payload));
      values.push(`($${n - 3}, $${n - 2}, $${n - 1}, $${n})`);
    }
    await db.query(`INSERT INTO ${table} (seq, id, received_at, payload) VALUES ${values.join(', ')} ON CONFLICT DO NOTHING`, params);
    for (const m of batch) m.ack();
  }
  writing = false;
}

await consumer.consume({
  max_messages: batchSize * 2,
  callback: (m) => {
    waiting.push(m);
    if (!writing) {
      write().catch((err: unknown) => {
        console.error(err);
        process.exit(1);
      });
    }
  },
});
process.send!({ type: 'ready', pid: process.pid });
process.on('message', (msg: { type: string }) => {
  if (msg.type === 'stop') void nc.drain().then(() => db.end()).then(() => process.exit(0));
});
