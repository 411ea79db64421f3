import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  connectNats,
  createPool,
  ensurePersisterConsumer,
  falconNames,
  pingDb,
  PULL_OPTIONS,
  runService,
  waitForDatabase,
  waitForStream,
} from '@falcon/shared';
import { createBatchHandler } from './batch.js';
import { loadConfig } from './config.js';
import { createPersisterMetrics } from './metrics.js';
import { startPersister } from './persister.js';
import { startPartitionKeeper } from './retention.js';
import { createMessageStore } from './store.js';

await runService({
  name: 'persister',
  moduleUrl: import.meta.url,
  loadConfig,
  async start({ config, log, registry, probes, life, signal, listenHttp }) {
    await listenHttp({ probesOnly: true });
    const names = falconNames(config.namespace);

    const pool = createPool({ url: config.databaseUrl, max: config.poolMax, applicationName: 'falcon-persister', log });
    life.onStop('postgres', () => pool.end());
    await waitForDatabase(pool, config.databaseUrl, log, signal);
    let databaseHealthy = true;
    // After a failed batch, ask the database itself; while batches succeed, that is proof enough.
    probes.addCheck('database', () => databaseHealthy || pingDb(pool));

    const link = await connectNats({ url: config.natsUrl, name: 'falcon-persister', log, signal, transport: config.natsTransport });
    // Drains after the last batch (stopped below, so earlier) so its acks reach the server.
    life.onStop('nats', () => link.nc.drain());
    probes.addCheck('nats', link.isConnected);
    const jsm = await jetstreamManager(link.nc);
    await waitForStream(jsm, names.stream, () => log.info({ stream: names.stream }, 'waiting for the stream'), signal);
    await ensurePersisterConsumer(jsm, names, config.consumer);
    const consumer = await jetstream(link.nc).consumers.get(names.stream, names.persisterConsumer);
    // A deleted consumer or stream ends the loop (by default the client would wait silently for
    // it to come back); the restart that follows re-creates the consumer.
    const messages = await consumer.consume({ max_messages: config.batchSize * 2, ...PULL_OPTIONS, abort_on_missing_resource: true });

    const persister = startPersister({
      messages,
      batchSize: config.batchSize,
      concurrency: config.concurrency,
      log,
      metrics: createPersisterMetrics(registry),
      handle: createBatchHandler({ store: createMessageStore(pool), log, maxDeliver: config.maxDeliver }),
      onDatabase: (healthy) => {
        if (healthy !== databaseHealthy) log[healthy ? 'info' : 'warn']({ healthy }, 'database health changed');
        databaseHealthy = healthy;
      },
    });
    life.onStop('consumer', () => persister.stop());
    // The consumer ending on its own is a failure: exit non-zero so the pod restarts.
    life.watch('consumer', persister.done);
    // Today's and tomorrow's partitions exist before the day turns, even without the retention job.
    const partitions = startPartitionKeeper({ pool, log, intervalMs: 15 * 60_000 });
    life.onStop('partitions', () => partitions.stop());
    log.info({ stream: names.stream, consumer: names.persisterConsumer, batchSize: config.batchSize }, 'persister consuming');
  },
}, { env: process.env });
