import { expect } from 'chai';
import { rangeCondition } from '../../src/repository.js';
import { parseTimestamp } from '../../src/time-range.js';
import { testDatabase, type TestDatabase } from '../../../../test-support/infra.js';
import { serveQuery } from './serve.js';

interface Row {
  id: string;
  seq: number;
  receivedAt: string;
}

const DAY = 86_400_000;
const ROWS_PER_DAY = 24_000;
// Three whole UTC days well in the past, one partition each (named as the persister names them).
const day0 = Date.UTC(2026, 0, 10);
const days = [day0, day0 + DAY, day0 + 2 * DAY];
const partitionName = (start: number) => `messages_p${new Date(start).toISOString().slice(0, 10).replaceAll('-', '')}`;
const iso = (ms: number) => new Date(ms).toISOString();

describe('query: NDJSON and time ranges against Postgres', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: { url: string; close(): void };
  let url: string;

  before(async () => {
    db = await testDatabase();
    for (const [i, start] of days.entries()) {
      await db.pool.query(`CREATE TABLE ${partitionName(start)} PARTITION OF messages FOR VALUES FROM ('${iso(start)}') TO ('${iso(start + DAY)}')`);
      // One message every 3.6 s across the day, seq increasing with time; a payload with raw line breaks.
      await db.pool.query(
        `INSERT INTO messages (seq, id, received_at, payload)
         SELECT $1::bigint + n, gen_random_uuid(), $2::timestamptz + n * interval '3600 ms', ('{"n":' || n || ',' || chr(10) || '"day":${i}}')::json
           FROM generate_series(0, $3::int - 1) AS n`,
        [i * ROWS_PER_DAY + 1, iso(start), ROWS_PER_DAY],
      );
    }
    await db.pool.query('ANALYZE messages');
    server = await serveQuery(db.pool);
    url = server.url;
  });

  after(async () => {
    server.close();
    await db.cleanup();
  });

  const ndjson = async (res: Response): Promise<Row[]> => {
    const text = await res.text();
    expect(text === '' || text.endsWith('\n'), 'every line ends with a newline').to.equal(true);
    return text.split('\n').slice(0, -1).map((line) => JSON.parse(line) as Row);
  };

  it('streams every message as NDJSON when asked, the same rows as the array', async () => {
    const res = await fetch(`${url}/api/messages`, { headers: { accept: 'application/x-ndjson' } });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/x-ndjson/);
    expect(res.headers.get('vary')).to.match(/accept/i);
    const lines = await ndjson(res);
    const array = (await (await fetch(`${url}/api/messages`, { headers: { accept: 'application/json' } })).json()) as Row[];
    expect(lines).to.have.length(3 * ROWS_PER_DAY);
    expect(lines).to.deep.equal(array);
    expect(lines.every((m, i) => m.seq === i + 1)).to.equal(true);
  });

  it('keeps the array without an Accept header and for Accept: */*', async () => {
    for (const headers of [{}, { accept: '*/*' }, { accept: 'text/html' }] as Record<string, string>[]) {
      const res = await fetch(`${url}/api/messages?limit=2`, { headers });
      expect(res.headers.get('content-type'), JSON.stringify(headers)).to.match(/^application\/json/);
      expect(await res.json()).to.have.length(2);
    }
  });

  it('selects from <= receivedAt < to, either bound alone, in both formats', async () => {
    const from = iso(days[1]! + 3_600_000); // exactly on a message: included
    const to = iso(days[1]! + 7_200_000); // exactly on a message: excluded
    const both = (await (await fetch(`${url}/api/messages?from=${from}&to=${to}`)).json()) as Row[];
    expect(both).to.have.length(1000);
    expect(both[0]!.receivedAt).to.equal(from);
    expect(both.at(-1)!.receivedAt).to.equal(iso(days[1]! + 7_200_000 - 3_600));
    expect(await ndjson(await fetch(`${url}/api/messages?from=${from}&to=${to}`, { headers: { accept: 'application/x-ndjson' } }))).to.deep.equal(both);

    const onlyFrom = await ndjson(await fetch(`${url}/api/messages?from=${iso(days[2]!)}`, { headers: { accept: 'application/x-ndjson' } }));
    expect(onlyFrom).to.have.length(ROWS_PER_DAY);
    expect(onlyFrom[0]!.seq).to.equal(2 * ROWS_PER_DAY + 1);
    const onlyTo = (await (await fetch(`${url}/api/messages?to=${iso(days[0]! + 36_000)}`)).json()) as Row[];
    expect(onlyTo.map((m) => m.seq)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // An offset is the same instant; an empty range is an empty list.
    const shifted = (await (await fetch(`${url}/api/messages?from=${encodeURIComponent(from.replace('T01:00:00.000Z', 'T02:00:00.000+01:00'))}&to=${to}`)).json()) as Row[];
    expect(shifted).to.deep.equal(both);
    expect(await (await fetch(`${url}/api/messages?from=${to}&to=${from}`)).json()).to.deep.equal([]);
  });

  it('pages through a range, the Link keeping the bounds, in both formats', async () => {
    const from = iso(days[0]! + 23 * 3_600_000);
    const to = iso(days[1]! + 3_600_000);
    for (const accept of ['application/json', 'application/x-ndjson']) {
      const seen: Row[] = [];
      let next: string | undefined = `/api/messages?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&limit=300`;
      let pages = 0;
      while (next) {
        const res: Response = await fetch(`${url}${next}`, { headers: { accept } });
        expect(res.status).to.equal(200);
        seen.push(...(accept === 'application/json' ? ((await res.json()) as Row[]) : await ndjson(res)));
        const link = res.headers.get('link');
        next = link ? /<([^>]+)>;\s*rel="next"/.exec(link)?.[1] : undefined;
        if (next) {
          const params = new URL(next, url).searchParams;
          expect(params.get('from'), accept).to.equal(from);
          expect(params.get('to'), accept).to.equal(to);
        }
        pages += 1;
      }
      expect(pages, accept).to.equal(7);
      expect(seen, accept).to.have.length(2000);
      expect(seen.every((m) => m.receivedAt >= from && m.receivedAt < to), accept).to.equal(true);
      expect(seen.every((m, i) => i === 0 || m.seq === seen[i - 1]!.seq + 1), accept).to.equal(true);
    }
  });

  it('answers 400 problem+json for a bound that is not an RFC 3339 date-time', async () => {
    for (const query of ['from=yesterday', 'to=2026-11-27', 'from=2026-11-27%2010:15:30Z', 'to=2026-11-27T10:15:30', 'from=1764288000', 'from=2026-02-30T00:00:00Z', 'from=a&from=b']) {
      for (const accept of ['application/json', 'application/x-ndjson']) {
        const res = await fetch(`${url}/api/messages?${query}`, { headers: { accept } });
        expect(res.status, query).to.equal(400);
        expect(res.headers.get('content-type')).to.equal('application/problem+json');
        const body = (await res.json()) as { errors: { path: string }[] };
        expect(body.errors.map((e) => e.path), query).to.satisfy((paths: string[]) => paths.some((p) => /^query:(from|to)$/.test(p)));
      }
    }
  });

  it('reads a range through the partition it lies in and an index, not a scan of everything', async () => {
    const range = { from: parseTimestamp(iso(days[1]! + 3_600_000))!, to: parseTimestamp(iso(days[1]! + 7_200_000))! };
    const plans = [
      // The page query and the full export's query, as the repository builds them.
      `SELECT seq FROM messages WHERE seq > 0${rangeCondition(range)} ORDER BY seq LIMIT 101`,
      `SELECT seq FROM messages WHERE true${rangeCondition(range)} ORDER BY seq`,
    ];
    for (const sql of plans) {
      const explain = await db.pool.query(`EXPLAIN (FORMAT JSON) ${sql}`);
      const plan = JSON.stringify(explain.rows[0]['QUERY PLAN']);
      const relations = [...plan.matchAll(/"Relation Name":"([^"]+)"/g)].map((m) => m[1]);
      const nodes = [...plan.matchAll(/"Node Type":"([^"]+)"/g)].map((m) => m[1]);
      expect(relations, sql).to.deep.equal([partitionName(days[1]!)]);
      expect(nodes, sql).to.not.include('Seq Scan');
      expect(nodes.some((n) => /Index/.test(n!)), sql).to.equal(true);
    }
  });
});
