import { jetstreamManager } from '@nats-io/jetstream';
import { expect } from 'chai';
import WebSocket from 'ws';
import { DEFAULT_STREAM_OPTIONS, ensureMessagesStream, type ServiceName } from '@falcon/shared';
import { freePort, waitFor } from '../../../../scripts/stack.js';
import { testDatabase, testNats, type TestDatabase, type TestNats } from '../../../../test-support/infra.js';
import { killServices, spawnService, type LogLine, type ServiceRun } from '../../../../test-support/service-process.js';

const FATAL = 'fatal';

async function get(url: string): Promise<{ status: number; type: string | null; retryAfter: string | null; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
  return { status: res.status, type: res.headers.get('content-type'), retryAfter: res.headers.get('retry-after'), body: await res.text() };
}

/** What a WebSocket upgrade is answered with, when it is refused. */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => {
      ws.close();
      reject(new Error('upgrade accepted'));
    });
    ws.once('error', () => undefined);
  });
}

const fatalLines = (run: ServiceRun) => run.logs.filter((l) => l.level === FATAL);

describe('service life cycle (each service as its own process)', function () {
  this.timeout(60_000);
  const runs: ServiceRun[] = [];

  async function start(service: ServiceName, env: Record<string, string>): Promise<ServiceRun> {
    const run = await spawnService(service, { SHUTDOWN_TIMEOUT_MS: '10000', ...env });
    runs.push(run);
    return run;
  }

  afterEach(async () => {
    await Promise.all(runs.splice(0).map((run) => run.stop('SIGKILL')));
    await killServices();
  });

  describe('with NATS and Postgres unreachable', () => {
    let unreachable: Record<string, string>;
    before(async () => {
      // Nothing listens on a port that was just free.
      const closed = await freePort();
      unreachable = { NATS_URL: `nats://127.0.0.1:${closed}`, DATABASE_URL: `postgres://postgres@127.0.0.1:${closed}/falcon` };
    });

    for (const service of ['ingest', 'query', 'persister', 'realtime'] as const) {
      it(`${service} answers its probes within a second, logs each connection attempt, and exits 0 at once on SIGTERM`, async () => {
        const run = await start(service, unreachable);
        await waitFor(`${service} to listen`, async () => (await get(`${run.url}/healthz`)).status === 200, 5_000, 10);
        // Within a second of starting, counted in the CPU time the process used until it listened
        // (module loading included): on an idle core that is the wall time, and unlike the wall
        // time it does not grow when a shared test machine is busy.
        const listening = await run.waitForLog('the listening line', (l) => l.msg === 'listening');
        expect(listening.cpuMs as number, `CPU ms until listening (wall: ${String(listening.uptimeMs)} ms)`).to.be.lessThan(1_000);
        const ready = await get(`${run.url}/readyz`);
        expect(ready.status).to.equal(503);
        expect(JSON.parse(ready.body)).to.include({ state: 'starting' });
        expect((await get(`${run.url}/metrics`)).status).to.equal(200);

        if (service === 'ingest' || service === 'query') {
          const route = service === 'ingest' ? await fetch(`${run.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }) : await fetch(`${run.url}/api/messages`);
          expect(route.status).to.equal(503);
          expect(route.headers.get('content-type')).to.equal('application/problem+json');
          expect(route.headers.get('retry-after')).to.match(/^\d+$/);
        }
        if (service === 'realtime') expect(await upgradeStatus(`ws://127.0.0.1:${run.port}/ws`)).to.equal(503);

        // Where it connects, then each failed attempt, with where it was going.
        const dependency = service === 'query' || service === 'persister' ? 'postgres' : 'nats';
        const target = (l: LogLine) => JSON.stringify(l.servers ?? l.database ?? '');
        const connecting = await run.waitForLog('the connecting line', (l) => l.msg === `connecting to ${dependency}`);
        // Probes first: listening before any dependency is dialled.
        expect(run.logs.indexOf(listening)).to.be.lessThan(run.logs.indexOf(connecting));
        expect(target(connecting)).to.contain('127.0.0.1');
        await run.waitForLog('two failed attempts', () => run.logs.filter((l) => l.msg === `${dependency} connection failed`).length >= 2, 10_000);
        const failed = run.logs.find((l) => l.msg === `${dependency} connection failed`)!;
        expect(failed.level).to.equal('warn');
        expect(target(failed)).to.contain('127.0.0.1');

        const stopping = Date.now();
        expect(await run.stop('SIGTERM')).to.equal(0);
        expect(Date.now() - stopping, 'ms from SIGTERM to exit').to.be.lessThan(2_000);
        expect(fatalLines(run)).to.deep.equal([]);
        expect(run.stderr).to.deep.equal([]);
      });
    }
  });

  describe('OPS_PORT', () => {
    it('serves /healthz, /readyz and /metrics on a second listener too, and nothing else there', async () => {
      const closed = await freePort();
      const opsPort = await freePort();
      const run = await start('ingest', { NATS_URL: `nats://127.0.0.1:${closed}`, OPS_PORT: String(opsPort) });
      const ops = `http://127.0.0.1:${opsPort}`;
      await waitFor('the ops listener', async () => (await get(`${ops}/healthz`)).status === 200, 5_000, 10);
      expect(JSON.parse((await get(`${ops}/readyz`)).body)).to.include({ state: 'starting' });
      expect((await get(`${ops}/metrics`)).body).to.contain('process_cpu_user_seconds_total');
      const other = await get(`${ops}/api/messages`);
      expect(other.status).to.equal(404);
      expect(other.type).to.equal('application/problem+json');
      expect((await get(`${run.url}/healthz`)).status).to.equal(200);
      expect(await run.stop('SIGTERM')).to.equal(0);
    });
  });

  describe('start-up errors', () => {
    it('reports every invalid variable at once as one fatal line and exits 1', async () => {
      const run = await start('ingest', { PORT: '0', INGEST_MAX_BYTES: 'lots', SHUTDOWN_TIMEOUT_MS: '5', FALCON_NAMESPACE: 'Not Valid' });
      expect(await run.exited).to.equal(1);
      const fatal = fatalLines(run);
      expect(fatal).to.have.length(1);
      expect(fatal[0]!.msg).to.equal('invalid configuration');
      expect((fatal[0]!.problems as string[]).join('\n')).to.match(/INGEST_MAX_BYTES/).and.match(/SHUTDOWN_TIMEOUT_MS/).and.match(/FALCON_NAMESPACE/);
      expect(run.stderr).to.deep.equal([]);
    });

    it('logs an unreadable schema file as fatal and exits 1', async () => {
      const run = await start('ingest', { NATS_URL: 'nats://127.0.0.1:4222', INGEST_SCHEMA_FILE: '/nonexistent/payload.schema.json' });
      expect(await run.exited).to.equal(1);
      const fatal = fatalLines(run);
      expect(fatal).to.have.length(1);
      expect(fatal[0]).to.include({ msg: 'service failed', reason: 'start-up failed' });
      expect(JSON.stringify(fatal[0]!.err)).to.contain('ENOENT');
      expect(run.stderr).to.deep.equal([]);
    });
  });

  describe('failures while running', () => {
    let nats: TestNats;
    let db: TestDatabase | undefined;
    beforeEach(async () => {
      nats = await testNats();
      await ensureMessagesStream(await jetstreamManager(nats.nc), nats.names, DEFAULT_STREAM_OPTIONS);
    });
    afterEach(async () => {
      await db?.cleanup();
      db = undefined;
      await nats.cleanup();
    });

    it('persister: its consumer deleted under it is a failure, exit 1; SIGTERM on a healthy one exits 0', async () => {
      db = await testDatabase();
      const env = { NATS_URL: nats.url, DATABASE_URL: db.url, FALCON_NAMESPACE: nats.names.namespace };
      const healthy = await start('persister', env);
      await waitFor('the persister to be ready', async () => (await get(`${healthy.url}/readyz`)).status === 200, 20_000, 50);
      expect(await healthy.stop('SIGTERM')).to.equal(0);

      const run = await start('persister', env);
      await waitFor('the persister to be ready', async () => (await get(`${run.url}/readyz`)).status === 200, 20_000, 50);
      await (await jetstreamManager(nats.nc)).consumers.delete(nats.names.stream, nats.names.persisterConsumer);
      expect(await run.exited).to.not.equal(0);
      expect(fatalLines(run)).to.have.length(1);
    });

    it('realtime: a stream that is gone (the feed cannot reopen) is a failure, exit 1, with clients told 1001', async () => {
      const run = await start('realtime', { NATS_URL: nats.url, FALCON_NAMESPACE: nats.names.namespace });
      await waitFor('the gateway to be ready', async () => (await get(`${run.url}/readyz`)).status === 200, 20_000, 50);
      const ws = new WebSocket(`ws://127.0.0.1:${run.port}/ws`);
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      await new Promise((resolve) => ws.once('open', resolve));
      await (await jetstreamManager(nats.nc)).streams.delete(nats.names.stream);
      expect(await run.exited).to.equal(1);
      expect(await closed).to.equal(1001);
      expect(fatalLines(run)).to.have.length(1);
    });
  });
});
