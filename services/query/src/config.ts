import { DEFAULT_PORTS, authEnv, authSettings, type AuthConfig, type AuthSettings, commonEnv, ConfigError, corsEnv, databaseEnv, parseEnv, serviceBasics, databaseSettings, type DatabaseSettings, type ServiceBasics, portEnv, type CommonConfig, type DatabaseConfig } from '@falcon/shared';
import { DEFAULT_EXPORT_LIMITS, type ExportLimits } from './exports.js';

export interface Config extends ServiceBasics, DatabaseSettings {
  /** Page size when ?after is given without ?limit. */
  defaultLimit: number;
  exports: ExportLimits;
  auth: AuthSettings;
  /** CORS_ALLOW_ORIGINS: the live page reads its first messages from query. */
  corsOrigins: string | undefined;
}

const schema = {
  type: 'object',
  properties: {
    ...commonEnv,
    ...databaseEnv,
    ...portEnv(DEFAULT_PORTS.query),
    ...corsEnv,
    QUERY_DEFAULT_LIMIT: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    QUERY_EXPORT_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 99, default: DEFAULT_EXPORT_LIMITS.maxConcurrent },
    QUERY_EXPORT_STATEMENT_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: DEFAULT_EXPORT_LIMITS.statementTimeoutMs },
    QUERY_EXPORT_STALL_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 3_600_000, default: DEFAULT_EXPORT_LIMITS.stallTimeoutMs },
    ...authEnv,
  },
} as const;

interface Env extends CommonConfig, DatabaseConfig, AuthConfig {
  QUERY_DEFAULT_LIMIT: number;
  CORS_ALLOW_ORIGINS?: string;
  QUERY_EXPORT_CONCURRENCY: number;
  QUERY_EXPORT_STATEMENT_TIMEOUT_MS: number;
  QUERY_EXPORT_STALL_TIMEOUT_MS: number;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv<Env>(schema, env);
  // Exports share the pool with paging and lookups; they must leave at least one connection.
  if (e.QUERY_EXPORT_CONCURRENCY >= e.PG_POOL_MAX) {
    throw new ConfigError([`QUERY_EXPORT_CONCURRENCY: must be less than PG_POOL_MAX (${e.PG_POOL_MAX}), so that paging and lookups keep a connection`]);
  }
  return {
    ...serviceBasics(e),
    ...databaseSettings(e),
    defaultLimit: e.QUERY_DEFAULT_LIMIT,
    exports: {
      maxConcurrent: e.QUERY_EXPORT_CONCURRENCY,
      statementTimeoutMs: e.QUERY_EXPORT_STATEMENT_TIMEOUT_MS,
      stallTimeoutMs: e.QUERY_EXPORT_STALL_TIMEOUT_MS,
      retryAfterSeconds: DEFAULT_EXPORT_LIMITS.retryAfterSeconds,
    },
    auth: authSettings(e),
    corsOrigins: e.CORS_ALLOW_ORIGINS,
  };
}
