import { createLogger, databaseEnv, parseEnv, commonEnv, packageVersion, type DatabaseConfig } from '@falcon/shared';
import { runMigrations } from './migrate.js';

const env = parseEnv<DatabaseConfig & { LOG_LEVEL: string }>(
  { type: 'object', properties: { LOG_LEVEL: commonEnv.LOG_LEVEL, DATABASE_URL: databaseEnv.DATABASE_URL } },
  process.env,
);
const log = createLogger({ service: 'migrate', version: packageVersion(import.meta.url), level: env.LOG_LEVEL });
try {
  await runMigrations(env.DATABASE_URL, log);
} catch (err) {
  log.error({ err }, 'migration failed');
  process.exitCode = 1;
}
