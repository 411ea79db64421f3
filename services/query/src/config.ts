import { commonEnv, databaseEnv, parseEnv, portEnv, type CommonConfig, type DatabaseConfig } from '@falcon/shared';

export interface Config {
  port: number;
  logLevel: string;
  databaseUrl: string;
  poolMax: number;
  shutdownTimeoutMs: number;
  /** Page size when ?after is given without ?limit. */
  defaultLimit: number;
}

const schema = {
  type: 'object',
  properties: {
    ...commonEnv,
    ...databaseEnv,
    ...portEnv(8082),
    QUERY_DEFAULT_LIMIT: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
} as const;

interface Env extends CommonConfig, DatabaseConfig {
  QUERY_DEFAULT_LIMIT: number;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv<Env>(schema, env);
  return {
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    databaseUrl: e.DATABASE_URL,
    poolMax: e.PG_POOL_MAX,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    defaultLimit: e.QUERY_DEFAULT_LIMIT,
  };
}
