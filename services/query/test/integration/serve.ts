import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { createMetricsRegistry, createProbes, createSilentLogger, logKoaErrors, type Registry } from '@falcon/shared';
import { createApp } from '../../src/app.js';
import { DEFAULT_EXPORT_LIMITS, type ExportLimits } from '../../src/exports.js';
import { createQueryMetrics } from '../../src/metrics.js';
import { createMessageRepository } from '../../src/repository.js';

export interface ServedQuery {
  url: string;
  port: number;
  /** The app's metrics. */
  registry: Registry;
  /** Stops the server, cutting any connection still open. */
  close(): void;
}

/** The query app over `pool` on a free port, ready; `exports` overrides the export limits. */
export async function serveQuery(pool: pg.Pool, options: { exports?: Partial<ExportLimits>; corsOrigins?: string } = {}): Promise<ServedQuery> {
  const registry = createMetricsRegistry('query', 'test');
  const probes = createProbes(registry, {});
  probes.markStarted();
  const log = createSilentLogger();
  const app = createApp({
    log,
    probes,
    repository: createMessageRepository(pool),
    metrics: createQueryMetrics(registry),
    openApi: { openapi: '3.1.0' },
    defaultLimit: 100,
    exports: { ...DEFAULT_EXPORT_LIMITS, ...options.exports },
    corsOrigins: options.corsOrigins ?? '*',
  });
  // As main.ts does: a reader cut off mid-export is logged, not printed by koa.
  logKoaErrors(app, log);
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    registry,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}
