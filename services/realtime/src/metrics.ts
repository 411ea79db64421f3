import { Counter, Gauge, type Registry } from '@falcon/shared';

export interface RealtimeMetrics {
  clients: Gauge;
  frames: Counter;
  slowDisconnects: Counter;
  resumes: Counter<'source'>;
}

export function createRealtimeMetrics(registry: Registry): RealtimeMetrics {
  return {
    clients: new Gauge({ name: 'falcon_realtime_clients', help: 'Connected WebSocket clients', registers: [registry] }),
    frames: new Counter({ name: 'falcon_realtime_messages_total', help: 'Messages pushed to live clients', registers: [registry] }),
    slowDisconnects: new Counter({ name: 'falcon_realtime_slow_disconnects_total', help: 'Clients closed with 1013 for falling behind', registers: [registry] }),
    resumes: new Counter({ name: 'falcon_realtime_resumes_total', help: 'Resumes with since, by where they were served from', labelNames: ['source'] as const, registers: [registry] }),
  };
}
