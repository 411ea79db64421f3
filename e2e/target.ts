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

export interface Target {
  ingest: string;
  query: string;
  realtime: string[];
  /** Probe URLs of persister replicas, when known (local stack only). */
  persister: string[];
  stack: Stack | undefined;
}

export interface LocalStack extends Target {
  stack: Stack;
  databaseUrl: string;
  natsUrl: string;
  stop(): Promise<void>;
}

/** A fresh local stack: its own database and stream namespace, removed by stop(). */
export async function startLocalStack(
  options: Partial<Pick<StackOptions, 'replicas' | 'env'>> & { natsUrl?: string; databaseUrl?: string } = {},
): Promise<LocalStack> {
  const infra: Infra = await ensureInfra(process.env, () => {});
  const { natsUrl, databaseUrl: databaseOverride, ...stackOptions } = options;
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
  return {
    ingest: stack.urls.ingest,
    query: stack.urls.query,
    realtime: stack.urls.realtime,
    persister: stack.urls.persister,
    stack,
    databaseUrl: databaseUrl.toString(),
    natsUrl: natsUrl ?? infra.natsUrl,
    async stop() {
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

export function target(): Promise<Target> {
  shared ??= (async () => {
    const { INGEST_URL, QUERY_URL, REALTIME_URL } = process.env;
    if (INGEST_URL && QUERY_URL && REALTIME_URL) {
      return { ingest: INGEST_URL, query: QUERY_URL, realtime: REALTIME_URL.split(','), persister: (process.env['PERSISTER_URL'] ?? '').split(',').filter(Boolean), stack: undefined };
    }
    local = await startLocalStack();
    return local;
  })();
  return shared;
}

export async function stopTarget(): Promise<void> {
  await local?.stop();
}

export const wsUrl = (httpUrl: string, query = '') => `${httpUrl.replace(/^http/, 'ws')}/ws${query}`;
