import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'chai';
import { parseListQuery, parsePageQuery } from '../../src/app.js';
import { CopyJsonDocuments, oneLine, type ExportFormat } from '../../src/copy-json.js';
import { parseTimestamp } from '../../src/time-range.js';
import { loadConfig } from '../../src/config.js';
import { createSlots } from '../../src/exports.js';

function binaryCopy(docs: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
  for (const doc of docs) {
    const head = Buffer.alloc(6);
    head.writeInt16BE(1, 0);
    const body = Buffer.from(doc, 'utf8');
    head.writeInt32BE(body.length, 2);
    parts.push(head, body);
  }
  const trailer = Buffer.alloc(2);
  trailer.writeInt16BE(-1, 0);
  parts.push(trailer);
  return Buffer.concat(parts);
}

async function convert(input: Buffer, chunkSize: number, format: ExportFormat = 'array'): Promise<string> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunkSize) chunks.push(input.subarray(i, i + chunkSize));
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), new CopyJsonDocuments(format), async function* (source) {
    for await (const chunk of source) out.push(chunk as Buffer);
  });
  return Buffer.concat(out).toString('utf8');
}

describe('CopyJsonDocuments', () => {
  const docs = ['{"seq":1,"payload":{"s":"a\\\\b \\"q\\" é 😀"}}', '{"seq":2,"payload":{}}', '{"seq":3,"payload":{"n":[1,2,3]}}'];

  it('turns a binary COPY of JSON documents into one JSON array, bytes untouched', async () => {
    const text = await convert(binaryCopy(docs), 1 << 16);
    expect(text).to.equal(`[${docs.join(',')}]`);
    expect(JSON.parse(text)).to.have.length(3);
  });

  it('handles rows split across any chunk boundary', async () => {
    const input = binaryCopy(docs);
    for (const size of [1, 2, 3, 5, 7, 13, 64]) expect(await convert(input, size), `chunk ${size}`).to.equal(`[${docs.join(',')}]`);
  });

  it('makes [] of an empty table', async () => {
    expect(await convert(binaryCopy([]), 4)).to.equal('[]');
  });

  it('fails on a truncated stream instead of producing a short array', async () => {
    const input = binaryCopy(docs);
    let failed = false;
    await convert(input.subarray(0, input.length - 10), 64).catch(() => {
      failed = true;
    });
    expect(failed).to.equal(true);
  });
});

describe('CopyJsonDocuments as NDJSON', () => {
  const docs = ['{"seq":1,"payload":{"s":"a\\nb"}}', '{"seq":2,"payload":\r\n{ "multi":\n\t"line" }\n}'];

  it('writes one document per line, every line ended, and nothing for an empty table', async () => {
    const input = binaryCopy(docs);
    for (const size of [1, 3, 64]) {
      const text = await convert(input, size, 'ndjson');
      expect(text.endsWith('\n')).to.equal(true);
      const lines = text.split('\n').slice(0, -1);
      expect(lines, `chunk ${size}`).to.have.length(2);
      expect(lines.map((l) => JSON.parse(l))).to.deep.equal(docs.map((d) => JSON.parse(d)));
    }
    expect(await convert(binaryCopy([]), 4, 'ndjson')).to.equal('');
  });

  it('turns raw line breaks between tokens into spaces and leaves escaped ones alone', () => {
    const doc = Buffer.from('{"a":\r\n"x\\ny"}');
    expect(oneLine(doc).toString()).to.equal('{"a":  "x\\ny"}');
    const plain = Buffer.from('{"a":1}');
    expect(oneLine(plain)).to.equal(plain);
  });
});

describe('parseTimestamp (RFC 3339)', () => {
  it('reads date-times with Z or an offset into UTC with microseconds', () => {
    expect(parseTimestamp('2026-11-27T10:15:30.123Z')).to.equal('2026-11-27T10:15:30.123000Z');
    expect(parseTimestamp('2026-11-27t10:15:30z')).to.equal('2026-11-27T10:15:30.000000Z');
    expect(parseTimestamp('2026-11-27T10:15:30.5+01:30')).to.equal('2026-11-27T08:45:30.500000Z');
    expect(parseTimestamp('1969-12-31T23:59:59.999999Z')).to.equal('1969-12-31T23:59:59.999999Z');
    expect(parseTimestamp('2024-02-29T00:00:00Z')).to.equal('2024-02-29T00:00:00.000000Z');
  });

  it('rounds a fraction finer than a microsecond up, so bounds keep their meaning on stored times', () => {
    expect(parseTimestamp('2026-11-27T10:15:30.0000001Z')).to.equal('2026-11-27T10:15:30.000001Z');
    expect(parseTimestamp('2026-11-27T10:15:30.1234560000Z')).to.equal('2026-11-27T10:15:30.123456Z');
  });

  it('maps instants Postgres cannot hold to the infinities', () => {
    expect(parseTimestamp('0000-01-01T00:00:00Z')).to.equal('-infinity');
    expect(parseTimestamp('9999-12-31T23:59:59-23:59')).to.equal('infinity');
  });

  it('rejects what RFC 3339 does not allow', () => {
    for (const text of ['2026-11-27', '2026-11-27 10:15:30Z', '2026-11-27T10:15:30', '2026-11-27T10:15Z', '2026-11-27T10:15:30+0100', '2026-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-11-27T24:00:00Z', '2026-11-27T10:15:30.Z', '1764288000', 'yesterday', '']) {
      expect(parseTimestamp(text), text).to.equal(undefined);
    }
  });
});

describe('parseListQuery', () => {
  it('reads the time range beside paging, either bound alone', () => {
    expect(parseListQuery({ from: '2026-11-27T00:00:00Z' }, 100)).to.deep.equal({ page: undefined, range: { from: '2026-11-27T00:00:00.000000Z' } });
    expect(parseListQuery({ to: '2026-11-27T00:00:00Z', after: '5' }, 100)).to.deep.equal({ page: { after: 5, limit: 100 }, range: { to: '2026-11-27T00:00:00.000000Z' } });
  });

  it('reports every bad parameter at once', () => {
    try {
      parseListQuery({ from: 'yesterday', to: ['2026-11-27T00:00:00Z', '2026-11-28T00:00:00Z'], limit: '0' }, 100);
      expect.fail('no error');
    } catch (err) {
      const paths = ((err as { problem: { errors: { path: string }[] } }).problem.errors).map((e) => e.path);
      expect(paths).to.have.members(['query:from', 'query:to', 'query:limit']);
    }
  });
});

describe('parsePageQuery', () => {
  it('returns undefined for the full list', () => {
    expect(parsePageQuery({}, 100)).to.equal(undefined);
  });

  it('reads after and limit with a default limit', () => {
    expect(parsePageQuery({ after: '10', limit: '5' }, 100)).to.deep.equal({ after: 10, limit: 5 });
    expect(parsePageQuery({ after: '0' }, 100)).to.deep.equal({ after: 0, limit: 100 });
    expect(parsePageQuery({ limit: '1000' }, 100)).to.deep.equal({ after: 0, limit: 1000 });
  });

  it('rejects bad, repeated and unknown parameters', () => {
    const bad = [{ after: '-1' }, { after: '1.5' }, { after: 'x' }, { after: '' }, { limit: '0' }, { limit: '1001' }, { limit: 'ten' }, { limit: ['1', '2'] }, { page: '2' }];
    for (const query of bad) expect(() => parsePageQuery(query, 100), JSON.stringify(query)).to.throw(/invalid query parameters/);
  });
});

describe('export slots', () => {
  it('hands out at most `size` slots at once, never queues, and takes each release once', () => {
    const slots = createSlots(2);
    const a = slots.tryAcquire();
    const b = slots.tryAcquire();
    expect(a).to.be.a('function');
    expect(b).to.be.a('function');
    expect(slots.tryAcquire()).to.equal(undefined);
    a!();
    a!();
    expect(slots.inUse).to.equal(1);
    expect(slots.tryAcquire()).to.be.a('function');
    expect(slots.tryAcquire()).to.equal(undefined);
  });
});

describe('query loadConfig', () => {
  it('refuses export concurrency that would leave lookups no pool connection', () => {
    expect(() => loadConfig({ PG_POOL_MAX: '2', QUERY_EXPORT_CONCURRENCY: '2' })).to.throw(/QUERY_EXPORT_CONCURRENCY/);
    expect(loadConfig({ PG_POOL_MAX: '3', QUERY_EXPORT_CONCURRENCY: '2', QUERY_EXPORT_STALL_TIMEOUT_MS: '5000' }).exports).to.include({ maxConcurrent: 2, stallTimeoutMs: 5000 });
  });
});
