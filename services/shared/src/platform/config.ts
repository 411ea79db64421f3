import { Ajv, type ErrorObject } from 'ajv';

/** A JSON Schema for a service's environment: one property per variable. */
export interface EnvSchema {
  type: 'object';
  properties: Record<string, Record<string, unknown>>;
  required?: string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

function describe(error: ErrorObject): string {
  const variable = error.instancePath.replace(/^\//, '') || String(error.params['missingProperty'] ?? '');
  return `${variable}: ${error.message ?? 'is invalid'}`;
}

/**
 * Reads the variables a schema names from `env`, coerced to their types and with defaults
 * applied. Every problem is reported at once, so an operator fixes a manifest in one pass.
 */
export function parseEnv<T>(schema: EnvSchema, env: Record<string, string | undefined>): T {
  const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: true });
  const validate = ajv.compile({ ...schema, additionalProperties: true });
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') picked[key] = value;
  }
  if (!validate(picked)) {
    throw new ConfigError((validate.errors ?? []).map(describe));
  }
  return picked as T;
}

/** Environment fragments every service shares, so each variable is defined once. */
export const commonEnv = {
  LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
  FALCON_NAMESPACE: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,31}$', default: 'falcon' },
  SHUTDOWN_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 600000, default: 20000 },
  /** A second listener with only /healthz, /readyz and /metrics (the chart's `ops` port). */
  OPS_PORT: { type: 'integer', minimum: 0, maximum: 65535 },
} as const;

export const natsEnv = {
  NATS_URL: { type: 'string', minLength: 1, default: 'nats://127.0.0.1:4222' },
} as const;

export const databaseEnv = {
  DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://', default: 'postgres://postgres@127.0.0.1:5432/falcon' },
  PG_POOL_MAX: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
} as const;

/**
 * Origins whose pages may call ingest and query from a browser (the live page's, at least).
 * Unset: none. The chart sets the page's public URL; only the local stack sets `*`.
 */
export const corsEnv = {
  CORS_ALLOW_ORIGINS: { type: 'string', minLength: 1 },
} as const;

export function portEnv(defaultPort: number) {
  return { PORT: { type: 'integer', minimum: 0, maximum: 65535, default: defaultPort } } as const;
}

export interface CommonConfig {
  LOG_LEVEL: string;
  FALCON_NAMESPACE: string;
  SHUTDOWN_TIMEOUT_MS: number;
  OPS_PORT?: number;
  PORT: number;
}

export interface NatsConfig {
  NATS_URL: string;
}

export interface DatabaseConfig {
  DATABASE_URL: string;
  PG_POOL_MAX: number;
}

export function natsServers(natsUrl: string): string[] {
  return natsUrl.split(',').map((s) => s.trim()).filter(Boolean);
}

/** The settings every service reads the same way. */
export interface ServiceBasics {
  port: number;
  logLevel: string;
  namespace: string;
  shutdownTimeoutMs: number;
  /** Separate probes-and-metrics listener; undefined serves them on `port` only. */
  opsPort: number | undefined;
}

export function serviceBasics(e: CommonConfig): ServiceBasics {
  return { port: e.PORT, logLevel: e.LOG_LEVEL, namespace: e.FALCON_NAMESPACE, shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS, opsPort: e.OPS_PORT };
}

export interface DatabaseSettings {
  databaseUrl: string;
  poolMax: number;
}

export function databaseSettings(e: DatabaseConfig): DatabaseSettings {
  return { databaseUrl: e.DATABASE_URL, poolMax: e.PG_POOL_MAX };
}
