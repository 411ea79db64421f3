import {
  closeHttpServer,
  createAuthenticator,
  createLogger,
  createMetricsRegistry,
  createPool,
  createProbes,
  createHttpServer,
  listen,
  onShutdown,
  openApiDocument,
  packageVersion,
  pingDb,
} from '@falcon/shared';
import { createApp } from './app.js';
import { createQueryMetrics } from './metrics.js';
import { loadConfig } from './config.js';
import { createMessageRepository } from './repository.js';

const version = packageVersion(import.meta.url);
const config = loadConfig(process.env);
const log = createLogger({ service: 'query', version, level: config.logLevel });

const pool = createPool({ url: config.databaseUrl, max: config.poolMax, applicationName: 'falcon-query', log });
const registry = createMetricsRegistry('query', version);
const probes = createProbes(registry, { database: () => pingDb(pool) });

const app = createApp({
  log,
  probes,
  repository: createMessageRepository(pool),
  metrics: createQueryMetrics(registry),
  openApi: openApiDocument(version),
  defaultLimit: config.defaultLimit,
  exports: config.exports,
  auth: createAuthenticator(config.auth),
  corsOrigins: config.corsOrigins,
});
// No request timeout: a full export streams for as long as the table needs, bounded instead by
// its statement timeout and the stalled-reader cut-off; headers still must arrive within 10 s.
const server = createHttpServer(app.callback(), 0);
const port = await listen(server, config.port);
probes.markStarted();
log.info({ port }, 'query listening');

onShutdown({
  log,
  timeoutMs: config.shutdownTimeoutMs,
  steps: [
    { name: 'postgres', run: () => pool.end() },
    { name: 'http', run: () => closeHttpServer(server) },
    { name: 'readiness', run: () => probes.markDraining() },
  ],
});
