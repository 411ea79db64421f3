import {
  DEFAULT_PORTS,
  commonEnv,
  databaseEnv,
  natsAuthEnv,
  natsEnv,
  natsTransportSettings,
  type NatsAuthConfig,
  type NatsTransportSettings,
  parseEnv,
  serviceBasics,
  databaseSettings,
  type DatabaseSettings,
  type ServiceBasics,
  portEnv,
  type CommonConfig,
  type ConsumerOptions,
  type DatabaseConfig,
  type NatsConfig,
} from '@falcon/shared';

export interface Config extends ServiceBasics, DatabaseSettings {
  natsUrl: string;
  natsTransport: NatsTransportSettings;
  /** Messages written per statement. */
  batchSize: number;
  /** Batches written at once. */
  concurrency: number;
  /** A message failing alone this many times goes to dead_letters. */
  maxDeliver: number;
  consumer: ConsumerOptions;
}

const schema = {
  type: 'object',
  properties: {
    ...commonEnv,
    ...natsEnv,
    ...natsAuthEnv,
    ...databaseEnv,
    ...portEnv(DEFAULT_PORTS.persister),
    PERSISTER_BATCH_SIZE: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
    PERSISTER_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 16, default: 4 },
    PERSISTER_MAX_DELIVER: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    PERSISTER_ACK_WAIT_MS: { type: 'integer', minimum: 1000, maximum: 3600000, default: 30000 },
    PERSISTER_MAX_ACK_PENDING: { type: 'integer', minimum: 1, maximum: 1000000, default: 20000 },
  },
} as const;

interface Env extends CommonConfig, NatsConfig, NatsAuthConfig, DatabaseConfig {
  PERSISTER_BATCH_SIZE: number;
  PERSISTER_CONCURRENCY: number;
  PERSISTER_MAX_DELIVER: number;
  PERSISTER_ACK_WAIT_MS: number;
  PERSISTER_MAX_ACK_PENDING: number;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv<Env>(schema, env);
  return {
    ...serviceBasics(e),
    natsUrl: e.NATS_URL,
    natsTransport: natsTransportSettings(e),
    ...databaseSettings(e),
    batchSize: e.PERSISTER_BATCH_SIZE,
    concurrency: e.PERSISTER_CONCURRENCY,
    maxDeliver: e.PERSISTER_MAX_DELIVER,
    consumer: { ackWaitMs: e.PERSISTER_ACK_WAIT_MS, maxAckPending: e.PERSISTER_MAX_ACK_PENDING },
  };
}
