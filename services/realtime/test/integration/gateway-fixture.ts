import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { expect } from 'chai';
import { DEFAULT_STREAM_OPTIONS, encodeEnvelope, ensureMessagesStream, newMessageId } from '@falcon/shared';
import { testNats, type TestNats } from '../../../../test-support/infra.js';
import { killServices, spawnService, type ServiceRun } from '../../../../test-support/service-process.js';
import { waitFor } from '../../../../scripts/stack.js';

/** A sample from /metrics: the first line of `name` whose labels include every one given. */
export async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && wanted.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').pop()) : NaN;
}

export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export interface GatewayFixture {
  readonly nats: TestNats;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** The gateways started by this test, stopped (and expected to exit 0) after it. */
  readonly services: ServiceRun[];
  /** The compiled gateway as its own process, as it ships, ready. */
  start(env?: Record<string, string>): Promise<ServiceRun>;
  /** The last seq the gateway has pushed, from its status document. */
  lastSeq(service: ServiceRun): Promise<number>;
  publish(count: number, payload?: (i: number) => string): Promise<number[]>;
  /** Closes a client after the test. */
  track<T extends { close(): Promise<void> }>(client: T): T;
}

/**
 * Each test of the calling describe gets its own stream namespace on the real NATS, and
 * whatever it started is stopped after it.
 */
export function useGatewayFixture(): GatewayFixture {
  let nats: TestNats;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  const services: ServiceRun[] = [];
  const clients: { close(): Promise<void> }[] = [];

  beforeEach(async () => {
    nats = await testNats();
    js = jetstream(nats.nc);
    jsm = await jetstreamManager(nats.nc);
    await ensureMessagesStream(jsm, nats.names, DEFAULT_STREAM_OPTIONS);
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    const codes = await Promise.all(services.splice(0).map((s) => s.stop()));
    await killServices();
    await nats.cleanup();
    expect(codes.every((code) => code === 0), `exit codes ${codes.join(', ')}`).to.equal(true);
  });

  return {
    get nats() {
      return nats;
    },
    get js() {
      return js;
    },
    get jsm() {
      return jsm;
    },
    services,
    async start(env = {}) {
      const service = await spawnService('realtime', { NATS_URL: nats.url, FALCON_NAMESPACE: nats.names.namespace, ...env });
      services.push(service);
      await waitFor('the gateway to be ready', async () => (await fetch(`${service.url}/readyz`)).status === 200, 20_000, 50);
      return service;
    },
    async lastSeq(service) {
      return ((await (await fetch(`${service.url}/status.json`)).json()) as { gatewayLastSeq: number }).gatewayLastSeq;
    },
    async publish(count, payload = (i) => `{"i":${i}}`) {
      const seqs: number[] = [];
      for (let i = 0; i < count; i++) seqs.push((await js.publish(nats.names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), payload(i)))).seq);
      return seqs;
    },
    track(client) {
      clients.push(client);
      return client;
    },
  };
}
