import { collectDefaultMetrics, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

export function createMetricsRegistry(service: string, version: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service, version });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export type ReadinessCheck = () => boolean | Promise<boolean>;

export interface OpsResponse {
  status: number;
  contentType: string;
  body: string;
}

export interface Probes {
  /** Adds a readiness check once the dependency it watches exists. */
  addCheck(name: string, check: ReadinessCheck): void;
  /** Called once start-up is complete. Until then /readyz answers 503. */
  markStarted(): void;
  /** Called first on shutdown: /readyz turns 503 so load balancers stop sending traffic. */
  markDraining(): void;
  isDraining(): boolean;
  /** The answer for /healthz, /readyz and /metrics, or undefined for any other path. */
  handle(path: string): Promise<OpsResponse | undefined>;
}

const JSON_TYPE = 'application/json';

/**
 * The three operational endpoints, independent of any HTTP framework so that koa, node:http
 * and uWS services answer them identically.
 */
export function createProbes(registry: Registry, initialChecks: Record<string, ReadinessCheck> = {}): Probes {
  const checks: Record<string, ReadinessCheck> = { ...initialChecks };
  let started = false;
  let draining = false;

  async function readiness(): Promise<OpsResponse> {
    const results: Record<string, boolean> = {};
    await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          results[name] = await check();
        } catch {
          results[name] = false;
        }
      }),
    );
    const state = draining ? 'draining' : started ? 'started' : 'starting';
    const ready = started && !draining && Object.values(results).every(Boolean);
    return {
      status: ready ? 200 : 503,
      contentType: JSON_TYPE,
      body: JSON.stringify({ status: ready ? 'ready' : 'unavailable', state, checks: results }),
    };
  }

  return {
    addCheck: (name, check) => {
      checks[name] = check;
    },
    markStarted: () => {
      started = true;
    },
    markDraining: () => {
      draining = true;
    },
    isDraining: () => draining,
    async handle(path) {
      switch (path) {
        case '/healthz':
          return { status: 200, contentType: JSON_TYPE, body: '{"status":"alive"}' };
        case '/readyz':
          return readiness();
        case '/metrics':
          return { status: 200, contentType: registry.contentType, body: await registry.metrics() };
        default:
          return undefined;
      }
    },
  };
}
