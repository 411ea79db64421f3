import { DEFAULT_PORTS, authEnv, authSettings, type AuthConfig, type AuthSettings, commonEnv, databaseEnv, parseEnv, serviceBasics, databaseSettings, type DatabaseSettings, type ServiceBasics, portEnv, type CommonConfig, type DatabaseConfig } from '@falcon/shared';

export interface Config extends ServiceBasics, DatabaseSettings {
  /** Page size when ?after is given without ?limit. */
  defaultLimit: number;
  auth: AuthSettings;
  /** Origins allowed to read from a browser ('*' or a comma-separated list). */
  corsOrigins: string;
}

const schema = {
  type: 'object',
  properties: {
    ...commonEnv,
    ...databaseEnv,
    ...portEnv(DEFAULT_PORTS.query),
    QUERY_DEFAULT_LIMIT: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    CORS_ALLOW_ORIGINS: { type: 'string', minLength: 1, default: '*' },
    ...authEnv,
  },
} as const;

interface Env extends CommonConfig, DatabaseConfig, AuthConfig {
  QUERY_DEFAULT_LIMIT: number;
  CORS_ALLOW_ORIGINS: string;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv<Env>(schema, env);
  return {
    ...serviceBasics(e),
    ...databaseSettings(e),
    defaultLimit: e.QUERY_DEFAULT_LIMIT,
    auth: authSettings(e),
    corsOrigins: e.CORS_ALLOW_ORIGINS,
  };
}
