/**
 * Run by fresh-machine.test.ts inside its network namespace (`ip netns exec`), where the
 * stack's loopback lives: opens the live WebSocket, POSTs one message, waits until it is
 * pushed and listed, reads it back by id, and prints what it saw as one JSON line.
 * Usage: node --import tsx e2e/local/namespace-probe.ts <ingest url> <query url> <realtime url>
 */
import { listAfter, postMessage } from '../client.js';
import { wsUrl } from '../target.js';
import { openClient } from '../../test-support/ws-client.js';
import { waitFor } from '../../scripts/stack.js';

const [ingest, query, realtime] = process.argv.slice(2);
if (!ingest || !query || !realtime) throw new Error('usage: namespace-probe.ts <ingest url> <query url> <realtime url>');

const client = await openClient(wsUrl(realtime));
await waitFor('the welcome frame', () => client.frames.some((f) => f.type === 'welcome'), 30_000);
const payload = { text: 'hello from a fresh machine' };
const { status, body: accepted } = await postMessage(ingest, payload, { 'Idempotency-Key': 'fresh-machine' });
await client.waitForSeq(accepted.seq, 30_000);
const pushed = client.frames.find((f) => f.type === 'message' && f.seq === accepted.seq);
let listed: unknown;
await waitFor('the message to be listed', async () => {
  listed = (await listAfter(query, accepted.seq - 1)).find((m) => m.id === accepted.id);
  return listed !== undefined;
}, 30_000, 200);
const byId = await fetch(`${query}/api/messages/${accepted.id}`);
const stored = { status: byId.status, body: (await byId.json()) as unknown };
await client.close();
process.stdout.write(`${JSON.stringify({ payload, status, accepted, pushed, listed, stored })}\n`);
