/**
 * Real NATS JetStream and Postgres for integration tests: NATS_URL and DATABASE_URL when set,
 * otherwise testcontainers where a container engine exists, otherwise the local defaults.
 * Each test file isolates itself with its own namespace (stream, subject, consumer names) and
 * its own database, both removed afterwards.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nuid, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { createSilentLogger, falconNames, migrateDatabase, type FalconNames } from '@falcon/shared';
import { ROOT } from '../scripts/stack.js';

interface Endpoints {
  natsUrl: string;
  databaseUrl: string;
}

let endpoints: Promise<Endpoints> | undefined;

function containerEngine(): boolean {
  return Boolean(process.env['DOCKER_HOST']) || existsSync('/var/run/docker.sock');
}

async function fromContainers(): Promise<Endpoints> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const nats = await new GenericContainer('nats:2.10-alpine').withCommand(['-js']).withExposedPorts(4222).withWaitStrategy(Wait.forLogMessage(/Server is ready/)).start();
  const postgres = await new PostgreSqlContainer('postgres:15-alpine').withUsername('postgres').withPassword('postgres').start();
  return {
    natsUrl: `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`,
    databaseUrl: `postgres://postgres:postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`,
  };
}

async function docker(): Promise<boolean> {
  if (!containerEngine()) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export function testEndpoints(): Promise<Endpoints> {
  endpoints ??= (async () => {
    const natsUrl = process.env['NATS_URL'];
    const databaseUrl = process.env['DATABASE_URL'];
    if (natsUrl && databaseUrl) return { natsUrl, databaseUrl };
    if (await docker()) {
      const started = await fromContainers();
      return { natsUrl: natsUrl ?? started.natsUrl, databaseUrl: databaseUrl ?? started.databaseUrl };
    }
    return { natsUrl: natsUrl ?? 'nats://127.0.0.1:4222', databaseUrl: databaseUrl ?? 'postgres://postgres@127.0.0.1:5432/postgres' };
  })();
  return endpoints;
}

export interface TestNats {
  url: string;
  nc: NatsConnection;
  names: FalconNames;
  /** Deletes this file's streams and closes the connection. */
  cleanup(): Promise<void>;
}

export async function testNats(): Promise<TestNats> {
  const { natsUrl } = await testEndpoints();
  const names = falconNames(`t${nuid.next().toLowerCase().slice(-12)}`);
  const nc = await connect({ servers: natsUrl.split(',') });
  return {
    url: natsUrl,
    nc,
    names,
    async cleanup() {
      const jsm = await jetstreamManager(nc);
      for (const stream of [names.stream, names.deadLetterStream]) await jsm.streams.delete(stream).catch(() => false);
      await nc.close();
    },
  };
}

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  cleanup(): Promise<void>;
}

/**
 * A pool for a test database. pg-pool's end() resolves once it has asked its idle clients to
 * close, not once they have; the DROP DATABASE ... WITH (FORCE) that follows can terminate a
 * backend still on its way out, and that error on an idle client must not crash the run.
 */
export function quietPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', () => undefined);
  return pool;
}

/** The schema's migrations: SQL owned by the persister, run by shared's migration runner. */
export const MIGRATIONS_DIR = join(ROOT, 'services', 'persister', 'migrations');

/** A fresh, empty database (no schema), removed by cleanup(). */
export async function emptyDatabase(): Promise<{ url: string; cleanup(): Promise<void> }> {
  const { databaseUrl } = await testEndpoints();
  const name = `falcon_t_${nuid.next().toLowerCase()}`;
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(databaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async cleanup() {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** A fresh database with Falcon's schema applied by the real migrations. */
export async function testDatabase(): Promise<TestDatabase> {
  const empty = await emptyDatabase();
  await migrateDatabase({ databaseUrl: empty.url, dir: MIGRATIONS_DIR, log: createSilentLogger() });
  const pool = quietPool(empty.url, 4);
  return {
    url: empty.url,
    pool,
    async cleanup() {
      await pool.end();
      await empty.cleanup();
    },
  };
}
