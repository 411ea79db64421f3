import { expect } from 'chai';
import { target, wsUrl, type Target } from '../target.js';
import { openClient } from '../../test-support/ws-client.js';

async function expectProblem(res: Response, status: number): Promise<Record<string, unknown>> {
  expect(res.status).to.equal(status);
  expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).to.include.keys('type', 'title', 'status', 'detail');
  expect(body['status']).to.equal(status);
  return body;
}

describe('contract error statuses', function () {
  let t: Target;
  before(async function () {
    this.timeout(120_000);
    t = await target();
  });
  const post = (body: BodyInit, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${t.ingest}/api/messages`, { method: 'POST', headers, body });

  it('ingest: 400 for malformed JSON', async () => {
    await expectProblem(await post('{"a": '), 400);
  });

  it('ingest: 400 for a body that is not an object', async () => {
    for (const body of ['[1,2]', '"text"', '42', 'null']) await expectProblem(await post(body), 400);
  });

  it('ingest: 400 for a body that is not valid UTF-8', async () => {
    const body = Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
    await expectProblem(await post(body, { 'content-type': 'application/json; charset=utf-8' }), 400);
  });

  it('ingest: 400 for a bad Idempotency-Key', async () => {
    await expectProblem(await post('{}', { 'content-type': 'application/json', 'idempotency-key': 'x'.repeat(129) }), 400);
    await expectProblem(await post('{}', { 'content-type': 'application/json', 'idempotency-key': 'has space' }), 400);
  });

  it('ingest: 413 for a body over 64 KiB', async () => {
    await expectProblem(await post(JSON.stringify({ big: 'x'.repeat(70 * 1024) })), 413);
  });

  it('ingest: accepts a charset parameter and answers 415 for other content types', async () => {
    expect((await post('{"ok":true}', { 'content-type': 'application/json; charset=utf-8' })).status).to.equal(202);
    await expectProblem(await post('{}', { 'content-type': 'text/plain' }), 415);
    await expectProblem(await post('a=1', { 'content-type': 'application/x-www-form-urlencoded' }), 415);
  });

  it('query: 400 for bad query parameters', async () => {
    for (const q of ['limit=0', 'limit=1001', 'after=-1', 'after=abc', 'limit=ten']) {
      const body = await expectProblem(await fetch(`${t.query}/api/messages?${q}`), 400);
      expect(body['errors']).to.be.an('array');
    }
  });

  it('query: 400 when {id} is not a UUID, 404 when unknown', async () => {
    await expectProblem(await fetch(`${t.query}/api/messages/not-a-uuid`), 400);
    await expectProblem(await fetch(`${t.query}/api/messages/00000000-0000-7000-8000-000000000000`), 404);
  });

  it('realtime: refuses a WebSocket with a bad since', async () => {
    let status = 0;
    await openClient(wsUrl(t.realtime[0]!, '?since=minus-one')).catch((err: { status: number }) => {
      status = err.status;
    });
    expect(status).to.equal(400);
  });
});
