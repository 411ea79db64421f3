import { Agent } from 'node:http';
import { request } from 'node:http';
import { expect } from 'chai';
import pg from 'pg';
import { startLocalStack, type LocalStack } from '../target.js';
import { startTcpBalancer, type TcpBalancer } from '../../test-support/tcp-balancer.js';
import { waitFor } from '../../scripts/stack.js';

interface Accepted {
  id: string;
  seq: number;
}

/**
 * Ingest scales out by replicas behind one Service. Here: two ingest processes behind a
 * round-robin TCP balancer on one port, against one of them behind the same balancer, with the
 * same load in the same test. On a small shared machine two replicas need not be faster (they
 * share the cores with NATS and the load), so the bound is generous: they must not make
 * ingest markedly slower, and every message must be stored exactly once.
 */
describe('two ingest replicas behind one port', function () {
  this.timeout(300_000);
  const PER_PHASE = 1500;
  const CONNECTIONS = 32;
  let stack: LocalStack;
  let balancer: TcpBalancer;
  let db: pg.Pool;

  before(async () => {
    stack = await startLocalStack({ replicas: { ingest: 2, persister: 1, query: 0, realtime: 0 } });
    balancer = await startTcpBalancer([]);
    db = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });
  });
  after(async () => {
    await db?.end();
    await balancer?.close();
    await stack?.stop();
  });

  /** POSTs `count` messages over `CONNECTIONS` keep-alive connections through the balancer. */
  async function load(count: number): Promise<{ accepted: Accepted[]; rate: number }> {
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    const accepted: Accepted[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        while (next < count) {
          const i = next++;
          const body = JSON.stringify({ i, text: 'scale-out check', pad: 'x'.repeat(64) });
          const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
            const req = request(
              { host: '127.0.0.1', port: balancer.port, path: '/api/messages', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
              (res) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (c: string) => (text += c));
                res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
              },
            );
            req.on('error', reject);
            req.end(body);
          });
          expect(status, text).to.equal(202);
          accepted.push(JSON.parse(text) as Accepted);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    agent.destroy();
    return { accepted, rate: count / seconds };
  }

  it('keeps throughput and stores every message exactly once', async () => {
    const [one, two] = stack.stack.processes.filter((p) => p.service === 'ingest');
    const single = [one!.port];
    const both = [one!.port, two!.port];
    const rates: Record<'one' | 'two', number[]> = { one: [], two: [] };
    const accepted: Accepted[] = [];
    // Alternated, so that whatever else the machine is doing lands on both.
    for (const [name, ports] of [['one', single], ['two', both], ['one', single], ['two', both]] as const) {
      balancer.setTargets(ports);
      const run = await load(PER_PHASE);
      rates[name].push(run.rate);
      accepted.push(...run.accepted);
    }
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    console.log(`      one replica ${rates.one.map(Math.round).join(', ')} msg/s; two replicas ${rates.two.map(Math.round).join(', ')} msg/s`);
    expect(sum(rates.two), 'two replicas do not fall below half of one').to.be.at.least(0.5 * sum(rates.one));
    expect(balancer.counts().get(two!.port) ?? 0, 'the second replica took connections').to.be.greaterThan(0);

    expect(new Set(accepted.map((a) => a.id)).size).to.equal(accepted.length);
    expect(new Set(accepted.map((a) => a.seq)).size).to.equal(accepted.length);
    const total = accepted.length;
    await waitFor('every accepted message stored', async () => Number((await db.query('SELECT count(*) AS n FROM messages')).rows[0].n) >= total, 120_000, 250);
    const { rows } = await db.query<{ n: number; ids: number }>('SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM messages');
    expect(rows[0]).to.deep.equal({ n: total, ids: total });
    const stored = await db.query<{ id: string }>('SELECT id::text FROM messages');
    expect(new Set(stored.rows.map((r) => r.id))).to.deep.equal(new Set(accepted.map((a) => a.id)));
  });
});
