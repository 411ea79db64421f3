import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { natsServers } from './config.js';
import { natsConnectionOptions, type NatsTransportSettings } from './nats-auth.js';

export type { NatsConnection };

export interface NatsOptions {
  url: string;
  name: string;
  log: Logger;
  /** Credentials and TLS (NATS_USER, NATS_TOKEN, NATS_CREDS_FILE, NATS_TLS_*, ...). */
  transport?: NatsTransportSettings;
}

export interface NatsLink {
  nc: NatsConnection;
  /** False from a disconnect until the reconnect, and after close or drain. */
  isConnected(): boolean;
}

/**
 * Connects and keeps reconnecting forever: a service outlives any NATS outage and reports it
 * through /readyz instead of exiting. Status changes are logged once each.
 */
export async function connectNats(options: NatsOptions): Promise<NatsLink> {
  const nc = await connect({
    servers: natsServers(options.url),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: true,
    pingInterval: 5_000,
    maxPingOut: 2,
    ...natsConnectionOptions(options.transport),
  });
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
