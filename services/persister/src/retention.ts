import { databaseEnv, commonEnv, parseEnv, type DatabaseConfig, type Logger, type Pool } from '@falcon/shared';
import { dropExpiredPartitions, ensurePartitions, type PartitionOptions } from './partitions.js';

export interface RetentionConfig {
  databaseUrl: string;
  logLevel: string;
  /** Days a message is kept at least; undefined keeps everything. */
  retentionDays: number | undefined;
}

const schema = {
  type: 'object',
  properties: {
    LOG_LEVEL: commonEnv.LOG_LEVEL,
    DATABASE_URL: databaseEnv.DATABASE_URL,
    RETENTION_DAYS: { type: 'integer', minimum: 1, maximum: 36500 },
  },
} as const;

export function loadRetentionConfig(env: Record<string, string | undefined>): RetentionConfig {
  const e = parseEnv<Pick<DatabaseConfig, 'DATABASE_URL'> & { LOG_LEVEL: string; RETENTION_DAYS?: number }>(schema, env);
  return { databaseUrl: e.DATABASE_URL, logLevel: e.LOG_LEVEL, retentionDays: e.RETENTION_DAYS };
}

export interface RetentionResult {
  created: string[];
  dropped: string[];
}

/** One retention pass: partitions ahead first (which also empties messages_default), then the drop. */
export async function runRetention(pool: Pool, retentionDays: number | undefined, now: Date, options: PartitionOptions): Promise<RetentionResult> {
  const created = await ensurePartitions(pool, now, options);
  const dropped = retentionDays === undefined ? [] : await dropExpiredPartitions(pool, now, retentionDays, options);
  return { created, dropped };
}

export interface PartitionKeeper {
  /** Stops the ticks, cuts a pass's lock-wait short, and resolves once no pass is running. */
  stop(): Promise<void>;
}

/**
 * The persister's own guard: today's and tomorrow's partitions at start and then every
 * `intervalMs`, so writes land in a day partition even if the retention job never runs.
 * A failed pass is logged and retried at the next tick; writes meanwhile go to messages_default.
 */
export function startPartitionKeeper(deps: { pool: Pool; log: Logger; intervalMs: number }): PartitionKeeper {
  const stopping = new AbortController();
  let running: Promise<void> | undefined;
  const pass = () => {
    running ??= ensurePartitions(deps.pool, new Date(), { log: deps.log, signal: stopping.signal })
      .then(
        (created) => deps.log.debug({ created }, 'partitions ensured'),
        (err: unknown) => {
          if (!stopping.signal.aborted) deps.log.warn({ err }, 'could not ensure partitions; writes go to the default partition meanwhile');
        },
      )
      .finally(() => {
        running = undefined;
      });
  };
  pass();
  const timer = setInterval(pass, deps.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await running;
    },
  };
}
