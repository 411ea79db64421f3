import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Counter, createMetricsRegistry, createProbes, Gauge, waitForStream, type FalconNames, type Logger, type NatsLink, type Probes } from '@falcon/shared';
import { pageConfig, type Config } from './config.js';
import { createReplay, createStreamBounds, startFeed, type Feed } from './feed.js';
import { createGateway, type Gateway } from './gateway.js';
import { loadStaticFiles } from './static-files.js';

export interface RealtimeService {
  gateway: Gateway;
  feed: Feed;
  probes: Probes;
  port: number;
  /** Shutdown steps in start-up order (onShutdown runs them in reverse). */
  steps: { name: string; run: () => unknown }[];
}

/**
 * Everything main.ts starts, in order: wait for the stream, follow it from its last seq, serve.
 * Split from main so tests start the same gateway in-process.
 */
export async function startRealtime(config: Config, names: FalconNames, link: NatsLink, log: Logger, version: string): Promise<RealtimeService> {
  const registry = createMetricsRegistry('realtime', version);
  const metrics = {
    clients: new Gauge({ name: 'falcon_realtime_clients', help: 'Connected WebSocket clients', registers: [registry] }),
    frames: new Counter({ name: 'falcon_realtime_messages_total', help: 'Messages pushed to live clients', registers: [registry] }),
    slowDisconnects: new Counter({ name: 'falcon_realtime_slow_disconnects_total', help: 'Clients closed with 1013 for falling behind', registers: [registry] }),
    resumes: new Counter({ name: 'falcon_realtime_resumes_total', help: 'Resumes with since, by where they were served from', labelNames: ['source'] as const, registers: [registry] }),
  };
  const js = jetstream(link.nc);
  const jsm = await jetstreamManager(link.nc);
  const info = await waitForStream(jsm, names.stream, () => log.info({ stream: names.stream }, 'waiting for the stream'));
  const bounds = createStreamBounds(jsm, names, info.state.first_seq, log);

  let feedRunning = false;
  const probes = createProbes(registry, { nats: link.isConnected, feed: () => feedRunning });
  const gateway = createGateway({
    log,
    probes,
    metrics,
    replay: createReplay(js, names),
    bounds,
    files: loadStaticFiles(config.webDir),
    pageConfig: (host) => pageConfig(config, host),
    startSeq: info.state.last_seq,
    historySize: config.historySize,
    historyMaxBytes: config.historyMaxBytes,
    maxBackpressure: config.maxBackpressure,
    idleTimeoutSeconds: config.idleTimeoutSeconds,
  });
  const feed = await startFeed(js, names, () => gateway.lastSeq() + 1, gateway.push, log);
  feedRunning = true;
  void feed.done.finally(() => {
    feedRunning = false;
  });
  const port = await gateway.listen(config.port);
  probes.markStarted();
  log.info({ port, stream: names.stream, fromSeq: info.state.last_seq + 1 }, 'realtime listening');
  return {
    gateway,
    feed,
    probes,
    port,
    steps: [
      { name: 'feed', run: () => feed.stop() },
      { name: 'clients', run: () => gateway.close() },
      { name: 'bounds', run: () => bounds.stop() },
      { name: 'readiness', run: () => probes.markDraining() },
    ],
  };
}
