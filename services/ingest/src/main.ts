import { readFileSync } from 'node:fs';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  closeHttpServer,
  connectNats,
  createAuthenticator,
  createRateLimiter,
  Counter,
  createLogger,
  createMetricsRegistry,
  createProbes,
  ensureMessagesStream,
  falconNames,
  createHttpServer,
  Histogram,
  listen,
  onShutdown,
  openApiDocument,
  packageVersion,
} from '@falcon/shared';
import { createApp } from './app.js';
import { loadConfig } from './config.js';
import { compilePayloadSchema } from './payload-schema.js';
import { createPublisher } from './publisher.js';

const version = packageVersion(import.meta.url);
const config = loadConfig(process.env);
const log = createLogger({ service: 'ingest', version, level: config.logLevel });
const names = falconNames(config.namespace);

const link = await connectNats({ url: config.natsUrl, name: 'falcon-ingest', log, transport: config.natsTransport });
const jsm = await jetstreamManager(link.nc);
const info = await ensureMessagesStream(jsm, names, config.stream);
log.info({ stream: names.stream, lastSeq: info.state.last_seq }, 'stream ready');

const registry = createMetricsRegistry('ingest', version);
const metrics = {
  requests: new Counter({ name: 'falcon_ingest_requests_total', help: 'POST /api/messages by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
  publishSeconds: new Histogram({
    name: 'falcon_ingest_publish_seconds',
    help: 'Time from publish to the stream acknowledgement',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  }),
};
const probes = createProbes(registry, { nats: link.isConnected });

const app = createApp({
  log,
  probes,
  metrics,
  publisher: createPublisher({ js: jetstream(link.nc), jsm, names, timeoutMs: config.publishTimeoutMs }),
  openApi: openApiDocument(version),
  validatePayload: config.schemaFile ? compilePayloadSchema(JSON.parse(readFileSync(config.schemaFile, 'utf8'))) : undefined,
  canPublish: link.isConnected,
  maxBytes: config.maxBytes,
  maxDepth: config.maxDepth,
  retryAfterSeconds: config.retryAfterSeconds,
  corsOrigins: config.corsOrigins,
  auth: createAuthenticator(config.auth),
  rateLimiter: config.rateLimit && createRateLimiter(config.rateLimit),
});
const server = createHttpServer(app.callback());
const port = await listen(server, config.port);
probes.markStarted();
log.info({ port }, 'ingest listening');

onShutdown({
  log,
  timeoutMs: config.shutdownTimeoutMs,
  steps: [
    { name: 'nats', run: () => link.nc.drain() },
    { name: 'http', run: () => closeHttpServer(server) },
    { name: 'readiness', run: () => probes.markDraining() },
  ],
});
