import { fileURLToPath } from 'node:url';
import { DEFAULT_PORTS, commonEnv, natsEnv, parseEnv, serviceBasics, type ServiceBasics, portEnv, type CommonConfig, type NatsConfig } from '@falcon/shared';

export interface Config extends ServiceBasics {
  natsUrl: string;
  webDir: string;
  /** Ingest URL the page posts to; undefined derives it from the page's host and ingest's default port. */
  publicIngestUrl: string | undefined;
  /** Query URL the page reads its first messages from; undefined derives it from the page's host and query's default port. */
  publicQueryUrl: string | undefined;
  historySize: number;
  /** Upper bound on the history's size in characters (about bytes). */
  historyMaxBytes: number;
  maxBackpressure: number;
  idleTimeoutSeconds: number;
}

const schema = {
  type: 'object',
  properties: {
    ...commonEnv,
    ...natsEnv,
    ...portEnv(DEFAULT_PORTS.realtime),
    REALTIME_WEB_DIR: { type: 'string', minLength: 1 },
    REALTIME_PUBLIC_INGEST_URL: { type: 'string', minLength: 1 },
    REALTIME_PUBLIC_QUERY_URL: { type: 'string', minLength: 1 },
    REALTIME_HISTORY_SIZE: { type: 'integer', minimum: 0, maximum: 1000000, default: 10000 },
    REALTIME_HISTORY_MAX_BYTES: { type: 'integer', minimum: 0, maximum: 4294967296, default: 33554432 },
    REALTIME_MAX_BACKPRESSURE_BYTES: { type: 'integer', minimum: 1024, maximum: 268435456, default: 1048576 },
    REALTIME_IDLE_TIMEOUT_SECONDS: { type: 'integer', minimum: 8, maximum: 960, default: 60 },
  },
} as const;

interface Env extends CommonConfig, NatsConfig {
  REALTIME_WEB_DIR?: string;
  REALTIME_PUBLIC_INGEST_URL?: string;
  REALTIME_PUBLIC_QUERY_URL?: string;
  REALTIME_HISTORY_SIZE: number;
  REALTIME_HISTORY_MAX_BYTES: number;
  REALTIME_MAX_BACKPRESSURE_BYTES: number;
  REALTIME_IDLE_TIMEOUT_SECONDS: number;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv<Env>(schema, env);
  return {
    ...serviceBasics(e),
    natsUrl: e.NATS_URL,
    // services/realtime/dist -> web/ in the repository and in the image alike.
    webDir: e.REALTIME_WEB_DIR ?? fileURLToPath(new URL('../../../web', import.meta.url)),
    publicIngestUrl: e.REALTIME_PUBLIC_INGEST_URL,
    publicQueryUrl: e.REALTIME_PUBLIC_QUERY_URL,
    historySize: e.REALTIME_HISTORY_SIZE,
    historyMaxBytes: e.REALTIME_HISTORY_MAX_BYTES,
    maxBackpressure: e.REALTIME_MAX_BACKPRESSURE_BYTES,
    idleTimeoutSeconds: e.REALTIME_IDLE_TIMEOUT_SECONDS,
  };
}

/**
 * Where the page posts (ingest) and reads its first messages (query): the operator's public
 * URLs, or the page's own host on the contract's default ports.
 */
export function pageConfig(urls: Pick<Config, 'publicIngestUrl' | 'publicQueryUrl'>, host: string): Record<string, unknown> {
  const hostname = host.replace(/:\d+$/, '') || '127.0.0.1';
  return {
    ingestUrl: urls.publicIngestUrl ?? `http://${hostname}:${DEFAULT_PORTS.ingest}`,
    queryUrl: urls.publicQueryUrl ?? `http://${hostname}:${DEFAULT_PORTS.query}`,
  };
}
