import { Counter, Histogram, type Registry } from '@falcon/shared';
import type { IngestMetrics } from './app.js';

export function createIngestMetrics(registry: Registry): IngestMetrics {
  return {
    requests: new Counter({ name: 'falcon_ingest_requests_total', help: 'POST /api/messages by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
    publishSeconds: new Histogram({
      name: 'falcon_ingest_publish_seconds',
      help: 'Time from publish to the stream acknowledgement',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}
