import {
  authEnv,
  ConfigError,
  authSettings,
  corsEnv,
  DEFAULT_PORTS,
  MAX_PAYLOAD_DEPTH,
  commonEnv,
  natsAuthEnv,
  natsEnv,
  natsTransportSettings,
  type NatsAuthConfig,
  type NatsTransportSettings,
  parseEnv,
  serviceBasics,
  type ServiceBasics,
  portEnv,
  type AuthConfig,
  type AuthSettings,
  type CommonConfig,
  type RateLimitSettings,
  type NatsConfig,
  type StreamOptions,
} from '@falcon/shared';

export interface Config extends ServiceBasics {
  natsUrl: string;
  natsTransport: NatsTransportSettings;
  /** Largest accepted body in bytes (413 above it). */
  maxBytes: number;
  /** Deepest JSON nesting accepted (400 above). */
  maxDepth: number;
  /** How long to wait for the stream's acknowledgement before answering 503. */
  publishTimeoutMs: number;
  retryAfterSeconds: number;
  /** Path of a JSON Schema every payload must satisfy; none means any object. */
  schemaFile: string | undefined;
  /** Origins allowed to POST from a browser ('*' or a comma-separated list); undefined: none. */
  corsOrigins: string | undefined;
  stream: StreamOptions;
  auth: AuthSettings;
  /** Undefined: no limit. */
  rateLimit: RateLimitSettings | undefined;
  /** X-Forwarded-For hops appended by our own proxies; 0 trusts none. */
  trustedProxyHops: number;
}

/** The stream's settings; ingest owns the stream, so these live here. */
export const streamEnv = {
  STREAM_MAX_AGE_SECONDS: { type: 'integer', minimum: 60, default: 86400 },
  STREAM_DUPLICATE_WINDOW_SECONDS: { type: 'integer', minimum: 120, default: 300 },
  STREAM_REPLICAS: { type: 'integer', minimum: 1, maximum: 5, default: 1 },
} as const;

const schema = {
  type: 'object',
  properties: {
    ...commonEnv,
    ...natsEnv,
    ...natsAuthEnv,
    ...portEnv(DEFAULT_PORTS.ingest),
    ...streamEnv,
    INGEST_MAX_BYTES: { type: 'integer', minimum: 16, maximum: 1048576, default: 65536 },
    INGEST_MAX_DEPTH: { type: 'integer', minimum: 1, maximum: MAX_PAYLOAD_DEPTH, default: 256 },
    INGEST_PUBLISH_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 60000, default: 5000 },
    INGEST_RETRY_AFTER_SECONDS: { type: 'integer', minimum: 1, maximum: 3600, default: 1 },
    INGEST_SCHEMA_FILE: { type: 'string', minLength: 1 },
    ...corsEnv,
    ...authEnv,
    INGEST_RATE_LIMIT: { type: 'integer', minimum: 1, maximum: 1000000 },
    INGEST_RATE_BURST: { type: 'integer', minimum: 0, maximum: 1000000 },
    INGEST_TRUSTED_PROXY_HOPS: { type: 'integer', minimum: 0, maximum: 10, default: 0 },
  },
} as const;

interface Env extends CommonConfig, NatsConfig, NatsAuthConfig, AuthConfig {
  INGEST_RATE_LIMIT?: number;
  INGEST_RATE_BURST?: number;
  INGEST_TRUSTED_PROXY_HOPS: number;
  STREAM_MAX_AGE_SECONDS: number;
  STREAM_DUPLICATE_WINDOW_SECONDS: number;
  STREAM_REPLICAS: number;
  INGEST_MAX_BYTES: number;
  INGEST_MAX_DEPTH: number;
  INGEST_PUBLISH_TIMEOUT_MS: number;
  INGEST_RETRY_AFTER_SECONDS: number;
  INGEST_SCHEMA_FILE?: string;
  CORS_ALLOW_ORIGINS?: string;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv<Env>(schema, env);
  if (e.INGEST_RATE_BURST !== undefined && e.INGEST_RATE_LIMIT === undefined) {
    throw new ConfigError(['INGEST_RATE_BURST: needs INGEST_RATE_LIMIT']);
  }
  return {
    ...serviceBasics(e),
    natsUrl: e.NATS_URL,
    natsTransport: natsTransportSettings(e),
    maxBytes: e.INGEST_MAX_BYTES,
    maxDepth: e.INGEST_MAX_DEPTH,
    publishTimeoutMs: e.INGEST_PUBLISH_TIMEOUT_MS,
    retryAfterSeconds: e.INGEST_RETRY_AFTER_SECONDS,
    schemaFile: e.INGEST_SCHEMA_FILE,
    corsOrigins: e.CORS_ALLOW_ORIGINS,
    stream: {
      maxAgeMs: e.STREAM_MAX_AGE_SECONDS * 1000,
      duplicateWindowMs: e.STREAM_DUPLICATE_WINDOW_SECONDS * 1000,
      // The envelope adds id, receivedAt and braces (~100 bytes), the publisher (a sub of up to
      // 256 characters, JSON-escaped up to 6 bytes each: ~1.6 KiB) and the Nats-Msg-Id header
      // (~170 bytes) to the client's body; the stream counts them all against max_msg_size, and
      // a message over it would be a 500, not the 413 the body limit promises.
      maxMessageBytes: e.INGEST_MAX_BYTES + 4096,
      replicas: e.STREAM_REPLICAS,
    },
    auth: authSettings(e),
    // The burst is spent at most once per window, on top of the sustained rate; by default a
    // client may briefly send one extra second's worth.
    rateLimit: e.INGEST_RATE_LIMIT === undefined ? undefined : { perSecond: e.INGEST_RATE_LIMIT, burst: e.INGEST_RATE_BURST ?? e.INGEST_RATE_LIMIT, burstWindowSeconds: 10 },
    trustedProxyHops: e.INGEST_TRUSTED_PROXY_HOPS,
  };
}
