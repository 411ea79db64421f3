import { DEFAULT_PORTS, commonEnv, databaseEnv, parseEnv, serviceBasics, databaseSettings, type DatabaseSettings, type ServiceBasics, portEnv, type CommonConfig, type DatabaseConfig } from '@falcon/shared';

export interface Config extends ServiceBasics, DatabaseSettings {
  /** Page size when ?after is given without ?limit. */
  defaultLimit: number;
}

const schema = {
  type: 'object',
  properties: {
    ...commonEnv,
    ...databaseEnv,
    ...portEnv(DEFAULT_PORTS.query),
    QUERY_DEFAULT_LIMIT: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
} as const;

interface Env extends CommonConfig, DatabaseConfig {
  QUERY_DEFAULT_LIMIT: number;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv<Env>(schema, env);
  return {
    ...serviceBasics(e),
    ...databaseSettings(e),
    defaultLimit: e.QUERY_DEFAULT_LIMIT,
  };
}
