/**
 * Child process: N WebSocket clients that record, for every message frame, the time from the
 * payload's `t` (a wall-clock timestamp in ms with sub-ms precision, set by whoever produced the
 * message) to its arrival here. Reports an HDR histogram (microseconds) to the parent on demand.
 *   argv: url count
 */
import * as hdr from 'hdr-histogram-js';
import WebSocket from 'ws';

const [url, countText] = process.argv.slice(2);
const count = Number(countText);
const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
const now = () => performance.timeOrigin + performance.now();
let frames = 0;
let open = 0;
const sockets: WebSocket[] = [];

for (let i = 0; i < count; i++) {
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
    process.exit(0);
  }
});
