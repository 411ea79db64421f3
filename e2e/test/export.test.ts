import { expect } from 'chai';
import { listAfter, postMessage, type Persisted } from '../client.js';
import { target, type Target } from '../target.js';
import { waitFor } from '../../scripts/stack.js';

const NDJSON = 'application/x-ndjson';

async function ndjsonLines(res: Response): Promise<Persisted[]> {
  const text = await res.text();
  if (text === '') return [];
  expect(text.endsWith('\n'), 'the last line ends with a newline').to.equal(true);
  return text.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Persisted);
}

const nextLink = (res: Response) => {
  const link = res.headers.get('link');
  return link ? /<([^>]+)>;\s*rel="next"/.exec(link)?.[1] : undefined;
};

describe('query: NDJSON export and time ranges', function () {
  this.timeout(60_000);
  let t: Target;
  let mine: Persisted[];
  let from: string;
  let to: string;

  before(async function () {
    this.timeout(120_000);
    t = await target();
    const accepted = [];
    for (let i = 0; i < 7; i++) accepted.push((await postMessage(t.ingest, { export: i, text: `line ${i}` })).body);
    // A payload with raw line breaks between its tokens: valid JSON, and still one NDJSON line.
    accepted.push((await postMessage(t.ingest, '{\n  "export": 7,\r\n  "text": "two\\nlines"\n}')).body);
    const ids = new Set(accepted.map((a) => a.id));
    const after = accepted[0]!.seq - 1;
    await waitFor('the messages to be persisted', async () => (await listAfter(t.query, after)).filter((m) => ids.has(m.id)).length === ids.size);
    mine = (await listAfter(t.query, after)).filter((m) => ids.has(m.id));
    from = mine[0]!.receivedAt;
    // Exclusive: one millisecond after the last one, so the last one is in.
    to = new Date(Date.parse(mine.at(-1)!.receivedAt) + 1).toISOString();
  });

  const range = (extra = '') => `${t.query}/api/messages?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}${extra}`;

  it('answers NDJSON for Accept: application/x-ndjson with the same rows as the array', async () => {
    const res = await fetch(range(), { headers: { accept: NDJSON } });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/x-ndjson/);
    const lines = await ndjsonLines(res);
    const array = (await (await fetch(range(), { headers: { accept: 'application/json' } })).json()) as Persisted[];
    expect(lines).to.deep.equal(array);
    expect(lines.map((m) => m.id)).to.include.members(mine.map((m) => m.id));
    expect(lines.find((m) => m.id === mine[7]!.id)!.payload).to.deep.equal({ export: 7, text: 'two\nlines' });
  });

  it('selects from <= receivedAt < to', async () => {
    const rows = (await (await fetch(range())).json()) as Persisted[];
    expect(rows.every((m) => m.receivedAt >= from && m.receivedAt < to)).to.equal(true);
    expect(rows.map((m) => m.id)).to.include.members(mine.map((m) => m.id));
    // to is exclusive: a range ending at the first message's own time leaves it out.
    const before = (await (await fetch(`${t.query}/api/messages?to=${encodeURIComponent(from)}&after=${mine[0]!.seq - 1}`)).json()) as Persisted[];
    expect(before.map((m) => m.id)).to.not.include(mine[0]!.id);
    const onlyFrom = (await (await fetch(`${t.query}/api/messages?from=${encodeURIComponent(from)}&after=${mine[0]!.seq - 1}&limit=1000`)).json()) as Persisted[];
    expect(onlyFrom.map((m) => m.id)).to.include.members(mine.map((m) => m.id));
  });

  it('pages a range in both formats, the Link keeping from and to', async () => {
    for (const accept of ['application/json', NDJSON]) {
      const seen: Persisted[] = [];
      let next: string | undefined = range('&limit=3');
      while (next) {
        const res: Response = await fetch(next, { headers: { accept } });
        expect(res.status).to.equal(200);
        seen.push(...(accept === NDJSON ? await ndjsonLines(res) : ((await res.json()) as Persisted[])));
        const link = nextLink(res);
        if (link) {
          const params = new URL(link, t.query).searchParams;
          expect([params.get('from'), params.get('to')], accept).to.deep.equal([from, to]);
        }
        next = link ? new URL(link, t.query).toString() : undefined;
      }
      const ids = new Set(mine.map((m) => m.id));
      expect(seen.filter((m) => ids.has(m.id)), accept).to.deep.equal(mine);
      expect(seen.every((m, i) => i === 0 || m.seq > seen[i - 1]!.seq), accept).to.equal(true);
    }
  });

  it('answers 400 problem+json for a bound that is not an RFC 3339 date-time', async () => {
    for (const bad of ['from=yesterday', 'to=1764288000', 'from=2026-11-27', 'to=2026-11-27T10%3A15%3A30']) {
      const res = await fetch(`${t.query}/api/messages?${bad}`, { headers: { accept: NDJSON } });
      expect(res.status, bad).to.equal(400);
      expect(res.headers.get('content-type'), bad).to.equal('application/problem+json');
    }
  });
});
