import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'chai';
import { parsePageQuery } from '../../src/app.js';
import { CopyJsonArray } from '../../src/copy-json.js';

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

async function convert(input: Buffer, chunkSize: number): Promise<string> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunkSize) chunks.push(input.subarray(i, i + chunkSize));
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), new CopyJsonArray(), async function* (source) {
    for await (const chunk of source) out.push(chunk as Buffer);
  });
  return Buffer.concat(out).toString('utf8');
}

describe('CopyJsonArray', () => {
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
