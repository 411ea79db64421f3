import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectNats, createAuthenticator, falconNames, runService, startupTimes, waitForStream } from '@falcon/shared';
import { createSubscriptions } from './catch-up.js';
import { loadConfig } from './config.js';
import { createFanOut } from './fan-out.js';
import { createReplay, liveFeedOpener, startFeed } from './feed.js';
import { createGateway } from './gateway.js';
import { FrameHistory } from './history.js';
import { createRealtimeMetrics } from './metrics.js';
import { pageConfig, pageHeaders } from './page-policy.js';
import { createStreamBounds } from './pipeline-status.js';
import { loadStaticFiles } from './static-files.js';

await runService({
  name: 'realtime',
  moduleUrl: import.meta.url,
  loadConfig,
  async start({ config, log, registry, probes, life, signal }) {
    const metrics = createRealtimeMetrics(registry);
    const names = falconNames(config.namespace);
    const gateway = createGateway({
      log,
      probes,
      files: loadStaticFiles(config.webDir),
      pageConfig: (host) => pageConfig(config, host),
      pageHeaders: (host) => pageHeaders(config, host),
      maxBackpressure: config.maxBackpressure,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      auth: createAuthenticator(config.auth),
      sseHeartbeatMs: config.sseHeartbeatSeconds * 1000,
    });
    const port = await gateway.listen(config.port);
    life.onStop('listener', () => gateway.close());
    log.info({ port, ...startupTimes() }, 'listening');

    const link = await connectNats({ url: config.natsUrl, name: 'falcon-realtime', log, signal, transport: config.natsTransport });
    life.onStop('nats', () => link.nc.drain());
    probes.addCheck('nats', link.isConnected);
    const js = jetstream(link.nc);
    const jsm = await jetstreamManager(link.nc);
    const info = await waitForStream(jsm, names.stream, () => log.info({ stream: names.stream }, 'waiting for the stream'), signal);
    const bounds = createStreamBounds(jsm, names, info.state.first_seq, log);
    life.onStop('stream status', () => bounds.stop());

    const fanOut = createFanOut({
      log,
      metrics,
      history: new FrameHistory(config.historySize, config.historyMaxBytes),
      startSeq: info.state.last_seq,
      maxBackpressure: config.maxBackpressure,
      broadcast: gateway.broadcast,
    });
    life.onStop('fan-out', () => fanOut.stop());
    const feed = await startFeed({ open: liveFeedOpener(js, names, log), nextSeq: () => fanOut.lastSeq() + 1, push: fanOut.push, log, signal });
    life.onStop('feed', () => feed.stop());
    life.watch('live feed', feed.done);
    probes.addCheck('feed', feed.isRunning);

    gateway.attach({
      fanOut,
      subscriptions: createSubscriptions({
        log,
        fanOut,
        replay: createReplay(js, names),
        bounds,
        metrics,
        resumeBufferBytes: Math.floor(config.maxBackpressure / 2),
        // Under the WebSocket idle timeout and uWS' 10 s HTTP timeout of a response that
        // cannot write (8 to 12 s: its timer ticks every 4 s), so a reader that stopped is
        // closed by this rule and counted as slow rather than cut by uWS' timers.
        stallMs: Math.min(6_000, (config.idleTimeoutSeconds * 1000) / 2),
      }),
      status: () => ({ ...bounds.status(), clients: fanOut.size(), gatewayLastSeq: fanOut.lastSeq() }),
    });
    // First to stop: clients get 1001 and reconnect elsewhere while this replica drains.
    life.onStop('clients', () => gateway.closeClients());
    log.info({ stream: names.stream, fromSeq: info.state.last_seq + 1 }, 'following the stream');
  },
}, { env: process.env });
