import { fileURLToPath } from 'node:url';
import {
  authEnv,
  authSettings,
  commonEnv,
  ConfigError,
  DEFAULT_PORTS,
  natsAuthEnv,
  natsEnv,
  natsTransportSettings,
  parseEnv,
  portEnv,
  SCOPES,
  serviceBasics,
  unverifiedScopes,
  type AuthConfig,
  type AuthSettings,
  type CommonConfig,
  type NatsAuthConfig,
  type NatsConfig,
  type NatsTransportSettings,
  type ServiceBasics,
} from '@falcon/shared';

export interface Config extends ServiceBasics {
  natsUrl: string;
  natsTransport: NatsTransportSettings;
  /** Who may open /ws and /sse (messages:subscribe); off unless a secret or key set is configured. */
  auth: AuthSettings;
  webDir: string;
  /** Ingest URL the page posts to; undefined derives it from the page's host and ingest's default port. */
  publicIngestUrl: string | undefined;
  /** Query URL the page reads its first messages from; undefined derives it from the page's host and query's default port. */
  publicQueryUrl: string | undefined;
  /** REALTIME_PAGE_TOKEN: handed to every visitor of the page, so read and subscribe only. */
  pageToken: string | undefined;
  historySize: number;
  /** Upper bound on the history's size in characters (about bytes). */
  historyMaxBytes: number;
  maxBackpressure: number;
  idleTimeoutSeconds: number;
  /** How often an idle /sse stream gets a comment, so proxies do not close it as idle. */
  sseHeartbeatSeconds: number;
}

const schema = {
  type: 'object',
  properties: {
    ...commonEnv,
    ...natsEnv,
    ...natsAuthEnv,
    ...authEnv,
    ...portEnv(DEFAULT_PORTS.realtime),
    REALTIME_WEB_DIR: { type: 'string', minLength: 1 },
    // Origins only end up in the page's Content-Security-Policy: no spaces, commas or semicolons.
    REALTIME_PUBLIC_INGEST_URL: { type: 'string', pattern: '^https?://[^\\s,;]+$' },
    REALTIME_PUBLIC_QUERY_URL: { type: 'string', pattern: '^https?://[^\\s,;]+$' },
    REALTIME_PAGE_TOKEN: { type: 'string', minLength: 1, maxLength: 16384 },
    REALTIME_HISTORY_SIZE: { type: 'integer', minimum: 0, maximum: 1000000, default: 10000 },
    REALTIME_HISTORY_MAX_BYTES: { type: 'integer', minimum: 0, maximum: 4294967296, default: 33554432 },
    REALTIME_MAX_BACKPRESSURE_BYTES: { type: 'integer', minimum: 1024, maximum: 268435456, default: 1048576 },
    REALTIME_IDLE_TIMEOUT_SECONDS: { type: 'integer', minimum: 8, maximum: 960, default: 60 },
    REALTIME_SSE_HEARTBEAT_SECONDS: { type: 'integer', minimum: 1, maximum: 300, default: 15 },
  },
} as const;

interface Env extends CommonConfig, NatsConfig, NatsAuthConfig, AuthConfig {
  REALTIME_WEB_DIR?: string;
  REALTIME_PUBLIC_INGEST_URL?: string;
  REALTIME_PUBLIC_QUERY_URL?: string;
  REALTIME_PAGE_TOKEN?: string;
  REALTIME_HISTORY_SIZE: number;
  REALTIME_HISTORY_MAX_BYTES: number;
  REALTIME_MAX_BACKPRESSURE_BYTES: number;
  REALTIME_IDLE_TIMEOUT_SECONDS: number;
  REALTIME_SSE_HEARTBEAT_SECONDS: number;
}

/** The scopes a page token may carry: anyone who opens the page can read it from /config.json. */
const PAGE_SCOPES: ReadonlySet<string> = new Set([SCOPES.read, SCOPES.subscribe]);

function checkPublicUrls(e: Env): string[] {
  const problems: string[] = [];
  for (const name of ['REALTIME_PUBLIC_INGEST_URL', 'REALTIME_PUBLIC_QUERY_URL'] as const) {
    const value = e[name];
    if (value !== undefined && !URL.canParse(value)) problems.push(`${name}: must be an absolute http(s) URL`);
  }
  return problems;
}

function checkPageToken(token: string | undefined): string[] {
  if (token === undefined) return [];
  const scopes = unverifiedScopes(token);
  if (!scopes) return ['REALTIME_PAGE_TOKEN: must be a JWT'];
  const extra = [...scopes].filter((s) => !PAGE_SCOPES.has(s));
  return extra.length === 0 ? [] : [`REALTIME_PAGE_TOKEN: is handed to every visitor of the page, so it may hold only ${[...PAGE_SCOPES].join(' ')} (it also holds ${extra.join(' ')})`];
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv<Env>(schema, env);
  const problems = [...checkPublicUrls(e), ...checkPageToken(e.REALTIME_PAGE_TOKEN)];
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ...serviceBasics(e),
    natsUrl: e.NATS_URL,
    natsTransport: natsTransportSettings(e),
    auth: authSettings(e),
    // services/realtime/dist -> web/ in the repository and in the image alike.
    webDir: e.REALTIME_WEB_DIR ?? fileURLToPath(new URL('../../../web', import.meta.url)),
    publicIngestUrl: e.REALTIME_PUBLIC_INGEST_URL,
    publicQueryUrl: e.REALTIME_PUBLIC_QUERY_URL,
    pageToken: e.REALTIME_PAGE_TOKEN,
    historySize: e.REALTIME_HISTORY_SIZE,
    historyMaxBytes: e.REALTIME_HISTORY_MAX_BYTES,
    maxBackpressure: e.REALTIME_MAX_BACKPRESSURE_BYTES,
    idleTimeoutSeconds: e.REALTIME_IDLE_TIMEOUT_SECONDS,
    sseHeartbeatSeconds: e.REALTIME_SSE_HEARTBEAT_SECONDS,
  };
}
