import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { createMetricsRegistry, createProbes, createSilentLogger } from '@falcon/shared';
import { createApp } from '../../src/app.js';
import { createMessageRepository } from '../../src/repository.js';

/** The query app over `pool` on a free port, ready; close() stops it. */
export async function serveQuery(pool: pg.Pool): Promise<{ url: string; close(): void }> {
  const probes = createProbes(createMetricsRegistry('query', 'test'), {});
  probes.markStarted();
  const app = createApp({ log: createSilentLogger(), probes, repository: createMessageRepository(pool), openApi: { openapi: '3.1.0' }, defaultLimit: 100 });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}
