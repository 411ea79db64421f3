import { Counter, Histogram, type Registry } from '@falcon/shared';
import type { PersisterMetrics } from './persister.js';

export function createPersisterMetrics(registry: Registry): PersisterMetrics {
  return {
    messages: new Counter({ name: 'falcon_persister_messages_total', help: 'Messages handled, by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
    batchSeconds: new Histogram({ name: 'falcon_persister_batch_seconds', help: 'Time to store and ack one batch', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [registry] }),
    batchSize: new Histogram({ name: 'falcon_persister_batch_size', help: 'Messages per batch', buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000], registers: [registry] }),
  };
}
