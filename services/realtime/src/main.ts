import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  connectNats,
  Counter,
  createLogger,
  createMetricsRegistry,
  createProbes,
  falconNames,
  Gauge,
  onShutdown,
  packageVersion,
  waitForStream,
} from '@falcon/shared';
import { loadConfig, pageConfig } from './config.js';
import { createReplay, createStreamBounds, startFeed } from './feed.js';
import { createGateway } from './gateway.js';
import { loadStaticFiles } from './static-files.js';

const version = packageVersion(import.meta.url);
const config = loadConfig(process.env);
const log = createLogger({ service: 'realtime', version, level: config.logLevel });
const names = falconNames(config.namespace);

const registry = createMetricsRegistry('realtime', version);
const metrics = {
  clients: new Gauge({ name: 'falcon_realtime_clients', help: 'Connected WebSocket clients', registers: [registry] }),
  frames: new Counter({ name: 'falcon_realtime_messages_total', help: 'Messages pushed to live clients', registers: [registry] }),
  slowDisconnects: new Counter({ name: 'falcon_realtime_slow_disconnects_total', help: 'Clients closed with 1013 for falling behind', registers: [registry] }),
  resumes: new Counter({ name: 'falcon_realtime_resumes_total', help: 'Resumes with since, by where they were served from', labelNames: ['source'] as const, registers: [registry] }),
};

const link = await connectNats({ url: config.natsUrl, name: 'falcon-realtime', log });
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
  pageConfig: (host) => pageConfig(config.publicIngestUrl, host),
  startSeq: info.state.last_seq,
  historySize: config.historySize,
  maxBackpressure: config.maxBackpressure,
  idleTimeoutSeconds: config.idleTimeoutSeconds,
});
const feed = await startFeed(js, names, info.state.last_seq + 1, gateway.push, log);
feedRunning = true;
const port = await gateway.listen(config.port);
probes.markStarted();
log.info({ port, stream: names.stream, fromSeq: info.state.last_seq + 1 }, 'realtime listening');

const shutdown = onShutdown({
  log,
  timeoutMs: config.shutdownTimeoutMs,
  steps: [
    { name: 'nats', run: () => link.nc.drain() },
    { name: 'feed', run: () => feed.stop() },
    { name: 'clients', run: () => gateway.close() },
    { name: 'bounds', run: () => bounds.stop() },
    { name: 'readiness', run: () => probes.markDraining() },
  ],
});
feed.done.then(
  () => {
    feedRunning = false;
    void shutdown('live feed ended');
  },
  (err: unknown) => {
    feedRunning = false;
    log.error({ err }, 'live feed failed');
    void shutdown('live feed failed');
  },
);
