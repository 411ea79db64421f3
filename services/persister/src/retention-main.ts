import { createLogger, createPool, packageVersion } from '@falcon/shared';
import { loadRetentionConfig, runRetention } from './retention.js';

// One retention pass, run by the chart's CronJob: partitions ahead, expired days dropped.
const config = loadRetentionConfig(process.env);
const log = createLogger({ service: 'retention', version: packageVersion(import.meta.url), level: config.logLevel });
const pool = createPool({ url: config.databaseUrl, max: 1, applicationName: 'falcon-retention', log });
try {
  // Up to about two minutes behind long exports (2 s lock waits with backoff); past that the run
  // fails and the next scheduled run tries again.
  const result = await runRetention(pool, config.retentionDays, new Date(), { log, attempts: 30 });
  log.info({ retentionDays: config.retentionDays ?? null, ...result }, 'retention pass done');
} catch (err) {
  log.error({ err }, 'retention pass failed');
  process.exitCode = 1;
} finally {
  await pool.end();
}
