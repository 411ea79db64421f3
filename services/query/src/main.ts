import { createAuthenticator, createPool, logKoaErrors, openApiDocument, pingDb, runService, waitForDatabase } from '@falcon/shared';
import { createApp } from './app.js';
import { loadConfig } from './config.js';
import { createQueryMetrics } from './metrics.js';
import { createMessageRepository } from './repository.js';

await runService({
  name: 'query',
  moduleUrl: import.meta.url,
  loadConfig,
  async start({ config, log, version, registry, probes, life, signal, listenHttp }) {
    // No request timeout: a full export streams for as long as the table needs, bounded instead
    // by its statement timeout and the stalled-reader cut-off; headers still must arrive within
    // 10 s, and a stop cuts what outlives its grace period.
    const http = await listenHttp({ requestTimeoutMs: 0 });

    const pool = createPool({ url: config.databaseUrl, max: config.poolMax, applicationName: 'falcon-query', log });
    life.onStop('postgres', () => pool.end());
    await waitForDatabase(pool, config.databaseUrl, log, signal);
    probes.addCheck('database', () => pingDb(pool));

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
    logKoaErrors(app, log);
    http.attach(app.callback());
  },
}, { env: process.env });
