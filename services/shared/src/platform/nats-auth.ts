/**
 * NATS credentials and TLS from the environment, as connection options for
 * @nats-io/transport-node. Files (NKey seed, .creds) are read at each (re)connect, so a
 * rotated Secret is picked up without a restart.
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';
import { ConfigError } from './config.js';

export const natsAuthEnv = {
  NATS_USER: { type: 'string', minLength: 1 },
  NATS_PASSWORD: { type: 'string', minLength: 1 },
  NATS_TOKEN: { type: 'string', minLength: 1 },
  NATS_NKEY_SEED_FILE: { type: 'string', minLength: 1 },
  NATS_CREDS_FILE: { type: 'string', minLength: 1 },
  NATS_TLS_CA_FILE: { type: 'string', minLength: 1 },
  NATS_TLS_CERT_FILE: { type: 'string', minLength: 1 },
  NATS_TLS_KEY_FILE: { type: 'string', minLength: 1 },
} as const;

export interface NatsAuthConfig {
  NATS_USER?: string;
  NATS_PASSWORD?: string;
  NATS_TOKEN?: string;
  NATS_NKEY_SEED_FILE?: string;
  NATS_CREDS_FILE?: string;
  NATS_TLS_CA_FILE?: string;
  NATS_TLS_CERT_FILE?: string;
  NATS_TLS_KEY_FILE?: string;
}

export interface NatsTransportSettings {
  user?: string;
  password?: string;
  token?: string;
  nkeySeedFile?: string;
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

/** The settings, with every contradiction reported at once (one way to log in, a cert with its key). */
export function natsTransportSettings(e: NatsAuthConfig): NatsTransportSettings {
  const problems: string[] = [];
  const ways = [e.NATS_USER && 'NATS_USER', e.NATS_TOKEN && 'NATS_TOKEN', e.NATS_NKEY_SEED_FILE && 'NATS_NKEY_SEED_FILE', e.NATS_CREDS_FILE && 'NATS_CREDS_FILE'].filter(Boolean);
  if (ways.length > 1) problems.push(`${ways.join(', ')}: set only one way to log in to NATS`);
  if (e.NATS_PASSWORD && !e.NATS_USER) problems.push('NATS_PASSWORD: needs NATS_USER');
  if (e.NATS_USER && !e.NATS_PASSWORD) problems.push('NATS_USER: needs NATS_PASSWORD');
  if (Boolean(e.NATS_TLS_CERT_FILE) !== Boolean(e.NATS_TLS_KEY_FILE)) problems.push('NATS_TLS_CERT_FILE, NATS_TLS_KEY_FILE: a client certificate needs its key, and the key its certificate');
  if (problems.length > 0) throw new ConfigError(problems);
  const settings: NatsTransportSettings = {};
  if (e.NATS_USER) Object.assign(settings, { user: e.NATS_USER, password: e.NATS_PASSWORD });
  if (e.NATS_TOKEN) settings.token = e.NATS_TOKEN;
  if (e.NATS_NKEY_SEED_FILE) settings.nkeySeedFile = e.NATS_NKEY_SEED_FILE;
  if (e.NATS_CREDS_FILE) settings.credsFile = e.NATS_CREDS_FILE;
  if (e.NATS_TLS_CA_FILE || e.NATS_TLS_CERT_FILE) {
    settings.tls = {
      ...(e.NATS_TLS_CA_FILE ? { caFile: e.NATS_TLS_CA_FILE } : {}),
      ...(e.NATS_TLS_CERT_FILE ? { certFile: e.NATS_TLS_CERT_FILE, keyFile: e.NATS_TLS_KEY_FILE } : {}),
    };
  }
  return settings;
}

/** The fragment of connect() options that logs in and sets up TLS; empty when nothing is set. */
export function natsConnectionOptions(settings: NatsTransportSettings = {}, readFile: (path: string) => Uint8Array = readFileSync): Partial<NodeConnectionOptions> {
  const options: Partial<NodeConnectionOptions> = {};
  if (settings.user !== undefined) Object.assign(options, { user: settings.user, pass: settings.password });
  if (settings.token !== undefined) options.token = settings.token;
  // The seed file holds the seed as text (SU...); nkeyAuthenticator wants its bytes.
  const seedFile = settings.nkeySeedFile;
  if (seedFile !== undefined) options.authenticator = nkeyAuthenticator(() => new TextEncoder().encode(new TextDecoder().decode(readFile(seedFile)).trim()));
  const credsFile = settings.credsFile;
  if (credsFile !== undefined) options.authenticator = credsAuthenticator(() => readFile(credsFile));
  if (settings.tls !== undefined) options.tls = { ...settings.tls };
  return options;
}
