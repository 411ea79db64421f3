/**
 * Child process: the simplest ingest, the baseline Falcon's ingest is held to. A koa handler
 * that reads and parses the JSON body with ingest's own body reader, publishes an envelope to JetStream,
 * awaits the stream's ack and answers 202. No validation, no metrics, no idempotency.
 *   argv: port natsUrl subject
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import Koa from 'koa';
import { readJsonBody } from '../services/ingest/src/json-body.js';

const [port, natsUrl, subject] = process.argv.slice(2) as [string, string, string];
const nc = await connect({ servers: natsUrl.split(',') });
const js = jetstream(nc);
const app = new Koa();
app.use(async (ctx) => {
  const id = randomUUID();
  const receivedAt = new Date().toISOString();
  const { value } = await readJsonBody(ctx.req, 64 * 1024);
  const ack = await js.publish(subject, JSON.stringify({ id, receivedAt, payload: value }));
  ctx.status = 202;
  ctx.body = { id, seq: ack.seq, receivedAt };
});
createServer(app.callback()).listen(Number(port), '127.0.0.1', () => process.send!({ type: 'ready', pid: process.pid }));
