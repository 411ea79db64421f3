import { readFile } from 'node:fs/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats, createAuthenticator, createRateLimiter, ensureMessagesStream, falconNames, logKoaErrors, openApiDocument, runService } from '@falcon/shared';
import { createApp } from './app.js';
import { loadConfig } from './config.js';
import { createIngestMetrics } from './metrics.js';
import { compilePayloadSchema } from './payload-schema.js';
import { createPublisher } from './publisher.js';

await runService({
  name: 'ingest',
  moduleUrl: import.meta.url,
  loadConfig,
  async start({ config, log, version, registry, probes, life, signal, listenHttp }) {
    const http = await listenHttp({ retryAfterSeconds: config.retryAfterSeconds });
    // Read before dialling anything: an unreadable or invalid schema is a start-up error.
    const validatePayload = config.schemaFile ? compilePayloadSchema(JSON.parse(await readFile(config.schemaFile, 'utf8'))) : undefined;
    const names = falconNames(config.namespace);

    const link = await connectNats({ url: config.natsUrl, name: 'falcon-ingest', log, signal, transport: config.natsTransport });
    life.onStop('nats', () => link.nc.drain());
    probes.addCheck('nats', link.isConnected);
    const jsm = await jetstreamManager(link.nc);
    const info = await ensureMessagesStream(jsm, names, config.stream);
    log.info({ stream: names.stream, lastSeq: info.state.last_seq }, 'stream ready');

    const app = createApp({
      log,
      probes,
      metrics: createIngestMetrics(registry),
      publisher: createPublisher({ nc: link.nc, jsm, names, timeoutMs: config.publishTimeoutMs }),
      openApi: openApiDocument(version),
      validatePayload,
      canPublish: link.isConnected,
      maxBytes: config.maxBytes,
      maxDepth: config.maxDepth,
      retryAfterSeconds: config.retryAfterSeconds,
      corsOrigins: config.corsOrigins,
      auth: createAuthenticator(config.auth),
      rateLimiter: config.rateLimit && createRateLimiter(config.rateLimit),
      trustedProxyHops: config.trustedProxyHops,
    });
    logKoaErrors(app, log);
    http.attach(app.callback());
  },
}, { env: process.env });
