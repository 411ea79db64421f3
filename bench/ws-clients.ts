/**
 * Child process: N WebSocket connections. `measure` of them are full clients that record, for
 * every message frame, the time from the payload's `t` (a wall-clock timestamp with sub-ms
 * precision, set when the message was produced) to its arrival here. The rest only drain their
 * socket: the server does the full fan-out work for them, but this process does not parse
 * their frames, so on a 2-core machine the measuring side does not starve the server.
 *   argv: url count measure
 */
import { randomBytes } from 'node:crypto';
import { connect as connectTcp } from 'node:net';
import * as hdr from 'hdr-histogram-js';
import WebSocket from 'ws';

const [url, countText, measureText] = process.argv.slice(2);
const count = Number(countText);
const measure = Math.min(count, Number(measureText ?? countText));
const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
const now = () => performance.timeOrigin + performance.now();
let frames = 0;
let open = 0;
const sockets: WebSocket[] = [];

const drains: ReturnType<typeof connectTcp>[] = [];
function drainClient(): void {
  const target = new URL(url!);
  const socket = connectTcp({ host: target.hostname, port: Number(target.port) });
  let upgraded = false;
  socket.on('connect', () => {
    socket.write(`GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
  socket.on('data', (chunk: Buffer) => {
    if (!upgraded && chunk.includes('101 Switching Protocols')) {
      upgraded = true;
      open += 1;
      if (open === count) process.send!({ type: 'ready' });
    }
  });
  socket.on('error', () => undefined);
  drains.push(socket);
}
for (let i = measure; i < count; i++) drainClient();

for (let i = 0; i < measure; i++) {
  const ws = new WebSocket(url!, { perMessageDeflate: false });
  ws.on('open', () => {
    open += 1;
    if (open === count) process.send!({ type: 'ready' });
  });
  ws.on('message', (data) => {
    const arrival = now();
    const text = String(data);
    const at = text.indexOf('"t":');
    if (at < 0) return;
    const t = Number.parseFloat(text.slice(at + 4, text.indexOf(',', at) > 0 ? text.indexOf(',', at) : undefined));
    frames += 1;
    histogram.recordValue(Math.max(1, Math.round((arrival - t) * 1000)));
  });
  ws.on('error', () => undefined);
  sockets.push(ws);
}

process.on('message', (msg: { type: string }) => {
  if (msg.type === 'report') {
    process.send!({ type: 'report', frames, p50: histogram.getValueAtPercentile(50) / 1000, p99: histogram.getValueAtPercentile(99) / 1000, max: histogram.maxValue / 1000 });
  } else if (msg.type === 'reset') {
    histogram.reset();
    frames = 0;
    process.send!({ type: 'reset' });
  } else if (msg.type === 'close') {
    for (const ws of sockets) ws.terminate();
    for (const socket of drains) socket.destroy();
    process.exit(0);
  }
});
