import { Counter, Gauge, Histogram, type Registry } from '@falcon/shared';

export interface RealtimeMetrics {
  clients: Gauge;
  frames: Counter;
  slowDisconnects: Counter;
  resumes: Counter<'source'>;
  deliveryLag: Histogram;
}

export function createRealtimeMetrics(registry: Registry): RealtimeMetrics {
  return {
    clients: new Gauge({ name: 'falcon_realtime_clients', help: 'Connected /ws and /sse clients', registers: [registry] }),
    frames: new Counter({ name: 'falcon_realtime_messages_total', help: 'Messages pushed to live clients', registers: [registry] }),
    slowDisconnects: new Counter({ name: 'falcon_realtime_slow_disconnects_total', help: 'Clients (/ws closed with 1013, /sse cut off) for falling behind', registers: [registry] }),
    resumes: new Counter({ name: 'falcon_realtime_resumes_total', help: 'Resumes with since, by where they were served from', labelNames: ['source'] as const, registers: [registry] }),
    // Ingest's receivedAt to the moment this gateway hands the frame to its clients: the
    // pipeline's end-to-end delivery latency as the dashboard shows it (clocks of two hosts,
    // so NTP skew is part of it; a negative difference counts as zero).
    deliveryLag: new Histogram({
      name: 'falcon_realtime_delivery_lag_seconds',
      help: 'Time from ingest accepting a message to the gateway handing it to its live clients',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}
