/**
 * Child process: the baseline gateway, a bare uWebSockets.js server that publishes
 * Falcon-shaped frames to every client on one topic, at a given rate, when told.
 *   argv: port
 */
import uWS from 'uWebSockets.js';

const port = Number(process.argv[2]);
const app = uWS.App();
app.ws('/ws', { compression: uWS.DISABLED, maxBackpressure: 4 * 1024 * 1024, open: (ws) => void ws.subscribe('m') });
app.listen('127.0.0.1', port, (token) => {
  if (!token) process.exit(1);
  process.send!({ type: 'ready' });
});

process.on('message', (msg: { type: string; rate: number; count: number }) => {
  if (msg.type !== 'publish') return;
  let seq = 0;
  const started = performance.now();
  const tick = () => {
    // Publish every frame that is due by now (timers are coarse), each built once.
    const due = Math.min(msg.count, Math.floor(((performance.now() - started) / 1000) * msg.rate) + 1);
    while (seq < due) {
      seq += 1;
      const t = performance.timeOrigin + performance.now();
      app.publish('m', `{"type":"message","seq":${seq},"id":"0193f3c6-5a7e-7cc2-9a4b-${String(seq).padStart(12, '0')}","receivedAt":"${new Date().toISOString()}","payload":{"t":${t},"text":"bench"}}`, false);
    }
    if (seq < msg.count) setTimeout(tick, 1);
    else process.send!({ type: 'done' });
  };
  tick();
});
