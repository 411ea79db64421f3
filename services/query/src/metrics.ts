import { Counter, Gauge, Histogram, type Registry } from '@falcon/shared';

export interface QueryMetrics {
  /** Every answer once, by route and outcome (ok, rejected, unavailable, error, aborted). */
  requests: Counter<'route' | 'outcome'>;
  /** From the request to the last byte of the answer (a whole export, for the full list). */
  requestSeconds: Histogram<'route'>;
  exportsActive: Gauge;
  /** Exports ended by the server: a reader that stopped reading. */
  exportsCut: Counter<'reason'>;
}

export function createQueryMetrics(registry: Registry): QueryMetrics {
  const registers = [registry];
  return {
    requests: new Counter({ name: 'falcon_query_requests_total', help: 'Query requests by route and outcome', labelNames: ['route', 'outcome'] as const, registers }),
    requestSeconds: new Histogram({
      name: 'falcon_query_request_seconds',
      help: 'Time from the request to the end of its answer',
      labelNames: ['route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 120],
      registers,
    }),
    exportsActive: new Gauge({ name: 'falcon_query_exports_active', help: 'Full exports streaming now', registers }),
    exportsCut: new Counter({ name: 'falcon_query_exports_cut_total', help: 'Exports ended by the server, by reason', labelNames: ['reason'] as const, registers }),
  };
}
