/**
 * Where the e2e suite points: INGEST_URL, QUERY_URL and REALTIME_URL when all are set (any
 * deployment: a cluster through port-forwards, a staging host), otherwise a local stack that
 * this suite starts from the compiled services, in its own namespace and database.
 */
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nuid } from '@nats-io/transport-node';
import pg from 'pg';
import { ensureInfra, ROOT, startStack, type Infra, type Stack, type StackOptions } from '../scripts/stack.js';
import { decodeJwt } from 'jose';
import { mintToken, TEST_SECRET } from '../test-support/tokens.js';

export interface Target {
  ingest: string;
  query: string;
  realtime: string[];
  /** Probe URLs of persister replicas, when known (local stack only). */
  persister: string[];
  stack: Stack | undefined;
  /** The sub of the token the suite sends (FALCON_TOKEN or E2E_AUTH=1): its messages' publisher. */
  publisher?: string;
}

export interface LocalStack extends Target {
  stack: Stack;
  databaseUrl: string;
  natsUrl: string;
  stop(): Promise<void>;
}

/** Origin -> the token every request to it carries unless it sets its own Authorization. */
const suiteTokens = new Map<string, string>();
let plainFetch: typeof fetch | undefined;

/**
 * With auth on, every request the suites make to a stack's ingest and query carries the
 * suite's token unless the request sets its own Authorization, so the contract tests read the
 * same with auth on and off. Other origins (a test's own auth stack) are left alone.
 */
function sendTokenTo(origins: string[], token: string): void {
  for (const origin of origins) suiteTokens.set(new URL(origin).origin, token);
  if (plainFetch) return;
  const plain = (plainFetch = globalThis.fetch);
  globalThis.fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const token = suiteTokens.get(url.origin);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (token === undefined || headers.has('authorization')) return plain(input, init);
    headers.set('authorization', `Bearer ${token}`);
    return plain(input, { ...init, headers });
  };
}

/** The suite's Authorization header for a stack URL, for requests made below fetch (raw TCP, WebSocket, SSE). */
export function suiteHeaders(url: string): Record<string, string> {
  const token = suiteTokens.get(new URL(url).origin);
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

const SUITE_SUB = 'e2e-suite';

/**
 * A fresh local stack: its own database and stream namespace, removed by stop(). With
 * E2E_AUTH=1 (or `suiteAuth: true`) it runs with auth on and the suite's requests carry a
 * token; a test that exercises auth itself passes `suiteAuth: false` and its own AUTH_* env.
 */
export async function startLocalStack(
  options: Partial<Pick<StackOptions, 'replicas' | 'env' | 'nodeArgs'>> & { natsUrl?: string; databaseUrl?: string; suiteAuth?: boolean } = {},
): Promise<LocalStack> {
  const infra: Infra = await ensureInfra(process.env, () => {});
  const { natsUrl, databaseUrl: databaseOverride, suiteAuth = process.env['E2E_AUTH'] === '1', ...stackOptions } = options;
  if (suiteAuth) stackOptions.env = { AUTH_JWT_SECRET: TEST_SECRET, ...stackOptions.env };
  const id = nuid.next().toLowerCase().slice(-10);
  const namespace = `e2e${id}`;
  const database = `falcon_e2e_${id}`;
  const databaseUrl = new URL(databaseOverride ?? infra.databaseUrl);
  databaseUrl.pathname = `/${database}`;
  const stack = await startStack({
    natsUrl: natsUrl ?? infra.natsUrl,
    databaseUrl: databaseUrl.toString(),
    namespace,
    logs: { dir: join(ROOT, '.falcon', 'logs', namespace) },
    ...stackOptions,
  });
  // A stack started without some services (replicas: { query: 0 }) has no URL for them.
  const origins = [stack.urls.ingest, stack.urls.query, ...stack.urls.realtime].filter((url) => url !== '');
  if (suiteAuth) sendTokenTo(origins, await mintToken({ sub: SUITE_SUB, expiresIn: 6 * 3600 }));
  return {
    ...(suiteAuth ? { publisher: SUITE_SUB } : {}),
    ingest: stack.urls.ingest,
    query: stack.urls.query,
    realtime: stack.urls.realtime,
    persister: stack.urls.persister,
    stack,
    databaseUrl: databaseUrl.toString(),
    natsUrl: natsUrl ?? infra.natsUrl,
    async stop() {
      for (const origin of origins) suiteTokens.delete(new URL(origin).origin);
      await stack.stop();
      const nc = await connect({ servers: infra.natsUrl.split(',') });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(`${namespace.toUpperCase()}_MESSAGES`).catch(() => false);
      await nc.close();
      const admin = new URL(infra.databaseUrl);
      admin.pathname = '/postgres';
      const client = new pg.Client({ connectionString: admin.toString() });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await client.end();
      await infra.stop();
    },
  };
}

let shared: Promise<Target> | undefined;
let local: LocalStack | undefined;

/**
 * The suite's target. A deployment with auth on needs FALCON_TOKEN (all three scopes); the
 * local stack runs with auth on when E2E_AUTH=1, with a token minted here.
 */
export function target(): Promise<Target> {
  shared ??= (async () => {
    const { INGEST_URL, QUERY_URL, REALTIME_URL, FALCON_TOKEN } = process.env;
    if (INGEST_URL && QUERY_URL && REALTIME_URL) {
      const remote: Target = { ingest: INGEST_URL, query: QUERY_URL, realtime: REALTIME_URL.split(','), persister: (process.env['PERSISTER_URL'] ?? '').split(',').filter(Boolean), stack: undefined };
      if (FALCON_TOKEN) {
        sendTokenTo([INGEST_URL, QUERY_URL, ...remote.realtime], FALCON_TOKEN);
        remote.publisher = decodeJwt(FALCON_TOKEN).sub;
      }
      return remote;
    }
    local = await startLocalStack();
    return local;
  })();
  return shared;
}

export async function stopTarget(): Promise<void> {
  await local?.stop();
}

/**
 * The URL of a gateway's /ws or /sse. With auth on, it carries the suite's token as
 * `access_token` (what a browser's WebSocket and EventSource must do), so every realtime client
 * of the suites, resuming ones included, connects the same way with auth on and off.
 */
function realtimeUrl(httpUrl: string, path: '/ws' | '/sse', query: string): string {
  const url = new URL(`${httpUrl}${path}${query}`);
  const token = suiteTokens.get(url.origin);
  if (token !== undefined) url.searchParams.set('access_token', token);
  if (path === '/ws') url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

export const wsUrl = (httpUrl: string, query = '') => realtimeUrl(httpUrl, '/ws', query);
export const sseUrl = (httpUrl: string, query = '') => realtimeUrl(httpUrl, '/sse', query);
