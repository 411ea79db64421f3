import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  connectNats,
  Counter,
  createLogger,
  createMetricsRegistry,
  createPool,
  createProbes,
  ensurePersisterConsumer,
  falconNames,
  Histogram,
  onShutdown,
  packageVersion,
  pingDb,
  PULL_OPTIONS,
  startOpsServer,
  waitForStream,
} from '@falcon/shared';
import { createBatchHandler } from './batch.js';
import { loadConfig } from './config.js';
import { startPersister } from './persister.js';
import { startPartitionKeeper } from './retention.js';
import { createMessageStore } from './store.js';

const version = packageVersion(import.meta.url);
const config = loadConfig(process.env);
const log = createLogger({ service: 'persister', version, level: config.logLevel });
const names = falconNames(config.namespace);

const registry = createMetricsRegistry('persister', version);
const metrics = {
  messages: new Counter({ name: 'falcon_persister_messages_total', help: 'Messages handled, by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
  batchSeconds: new Histogram({ name: 'falcon_persister_batch_seconds', help: 'Time to store and ack one batch', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [registry] }),
  batchSize: new Histogram({ name: 'falcon_persister_batch_size', help: 'Messages per batch', buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000], registers: [registry] }),
};

const pool = createPool({ url: config.databaseUrl, max: config.poolMax, applicationName: 'falcon-persister', log });
const link = await connectNats({ url: config.natsUrl, name: 'falcon-persister', log, transport: config.natsTransport });
let databaseHealthy = true;
const probes = createProbes(registry, {
  nats: link.isConnected,
  // After a failed batch, ask the database itself; while batches succeed, that is proof enough.
  database: () => databaseHealthy || pingDb(pool),
});
const ops = await startOpsServer(probes, config.port);
log.info({ port: ops.port }, 'persister probes listening');

const jsm = await jetstreamManager(link.nc);
await waitForStream(jsm, names.stream, () => log.info({ stream: names.stream }, 'waiting for the stream'));
await ensurePersisterConsumer(jsm, names, config.consumer);
const consumer = await jetstream(link.nc).consumers.get(names.stream, names.persisterConsumer);
const messages = await consumer.consume({ max_messages: config.batchSize * 2, ...PULL_OPTIONS });

const persister = startPersister({
  messages,
  batchSize: config.batchSize,
  concurrency: config.concurrency,
  log,
  metrics,
  handle: createBatchHandler({ store: createMessageStore(pool), log, maxDeliver: config.maxDeliver }),
  onDatabase: (healthy) => {
    if (healthy !== databaseHealthy) log[healthy ? 'info' : 'warn']({ healthy }, 'database health changed');
    databaseHealthy = healthy;
  },
});
// Today's and tomorrow's partitions exist before the day turns, even without the retention job.
const partitions = startPartitionKeeper({ pool, log, intervalMs: 15 * 60_000 });
probes.markStarted();
log.info({ stream: names.stream, consumer: names.persisterConsumer, batchSize: config.batchSize }, 'persister consuming');

const shutdown = onShutdown({
  log,
  timeoutMs: config.shutdownTimeoutMs,
  steps: [
    { name: 'ops', run: () => ops.close() },
    { name: 'postgres', run: () => pool.end() },
    { name: 'partitions', run: () => partitions.stop() },
    // Drain after the last batch so its acks are flushed to the server before the socket closes.
    { name: 'nats', run: () => link.nc.drain() },
    { name: 'consumer', run: () => persister.stop() },
    { name: 'readiness', run: () => probes.markDraining() },
  ],
});
persister.done.then(
  () => void shutdown('consumer ended'),
  (err: unknown) => {
    log.error({ err }, 'consumer failed');
    void shutdown('consumer failed');
  },
);
