import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { natsServers } from './config.js';
import { natsConnectionOptions, type NatsTransportSettings } from './nats-auth.js';
import { retry } from './retry.js';
import { maskUrl } from './logger.js';

export type { NatsConnection };

export interface NatsOptions {
  url: string;
  name: string;
  log: Logger;
  /** Credentials and TLS (NATS_USER, NATS_TOKEN, NATS_CREDS_FILE, NATS_TLS_*, ...). */
  transport?: NatsTransportSettings;
  /** Aborting it ends the connection attempts (a stop during start-up). */
  signal?: AbortSignal;
  /** More client options (credentials, TLS), passed through. */
  connectOptions?: Partial<ConnectionOptions>;
}

export interface NatsLink {
  nc: NatsConnection;
  /** False from a disconnect until the reconnect, and after close or drain. */
  isConnected(): boolean;
}

/**
 * Connects, retrying with a logged line per failed attempt (the client's own
 * waitOnFirstConnect retries silently, which left a pod killed by its startup probe with an
 * empty log), then keeps reconnecting forever: a service outlives any NATS outage and reports
 * it through /readyz instead of exiting. Status changes are logged once each.
 */
export async function connectNats(options: NatsOptions): Promise<NatsLink> {
  const servers = natsServers(options.url);
  // Logged without passwords: a nats://user:pass@host URL is a credential.
  const target = maskUrl(options.url);
  options.log.info({ servers: target }, 'connecting to nats');
  const nc = await retry(
    async () => {
      const attempt = connect({
        servers,
        name: options.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        timeout: 5_000,
        pingInterval: 5_000,
        maxPingOut: 2,
        ...natsConnectionOptions(options.transport),
        ...options.connectOptions,
      });
      // A stop during an attempt abandons it; a connection that still opens is closed.
      const onAbort = () => void attempt.then((late) => late.close()).catch(() => undefined);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      attempt.then(
        () => options.signal?.removeEventListener('abort', onAbort),
        () => options.signal?.removeEventListener('abort', onAbort),
      );
      return attempt;
    },
    {
      initialMs: 250,
      maxMs: 5_000,
      signal: options.signal,
      onFailure: (err, attempt, retryInMs) => options.log.warn({ err, servers: target, attempt, retryInMs }, 'nats connection failed'),
    },
  );
  let connected = true;
  void (async () => {
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
          connected = false;
          options.log.warn({ server: status.server }, 'nats disconnected');
          break;
        case 'reconnect':
          connected = true;
          options.log.info({ server: status.server }, 'nats reconnected');
          break;
        case 'error':
          options.log.warn({ err: status.error }, 'nats error');
          break;
        case 'slowConsumer':
          options.log.warn({ sub: status.sub.getSubject() }, 'nats slow consumer');
          break;
        default:
          break;
      }
    }
  })();
  options.log.info({ server: nc.getServer() }, 'nats connected');
  return { nc, isConnected: () => connected && !nc.isClosed() && !nc.isDraining() };
}
