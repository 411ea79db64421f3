import { connect as connectTcp, type Socket } from 'node:net';
import { expect } from 'chai';
import fc from 'fast-check';
import { startLocalStack, suiteHeaders, wsUrl, type LocalStack } from '../target.js';
import { openClient, type TestClient } from '../../test-support/ws-client.js';
import { waitFor } from '../../scripts/stack.js';

/** Never a 5xx, never a hang: every request gets an answer within this bound. */
const ANSWER_WITHIN_MS = 10_000;

async function request(url: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
  await res.clone().arrayBuffer();
  return res;
}

/** Whether a parsed JSON value has a "__proto__" key anywhere (JSON.parse makes it an own key). */
function hasProtoKey(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (!Array.isArray(value) && Object.hasOwn(value, '__proto__')) return true;
  return Object.values(value).some(hasProtoKey);
}

describe('hostile input (property-based)', function () {
  this.timeout(300_000);
  let stack: LocalStack;
  let client: TestClient;
  const accepted = new Map<string, { seq: number; payload: unknown }>();

  before(async () => {
    stack = await startLocalStack();
    client = await openClient(wsUrl(stack.realtime[0]!));
  });
  after(async () => {
    await client?.close();
    await stack?.stop();
  });

  it('any JSON value: objects are accepted, everything else is a 400, never a 5xx', async () => {
    await fc.assert(
      // Half of the cases are objects (what ingest accepts), half any JSON value at all.
      fc.asyncProperty(fc.oneof(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 5 })), fc.jsonValue({ maxDepth: 6 })), async (value) => {
        const text = JSON.stringify(value);
        // What was sent: JSON has no -0 (it is written as 0).
        const sent = JSON.parse(text) as unknown;
        const isObject = typeof sent === 'object' && sent !== null && !Array.isArray(sent);
        const res = await request(`${stack.ingest}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
        // Ingest refuses "__proto__" keys at any depth on purpose (services/ingest/src/json-body.ts).
        const acceptable = isObject && !hasProtoKey(sent);
        expect(res.status).to.equal(acceptable ? 202 : 400);
        if (acceptable) {
          const body = (await res.json()) as { id: string; seq: number };
          accepted.set(body.id, { seq: body.seq, payload: sent });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes as a JSON body: a 4xx, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async (bytes) => {
        const res = await request(`${stack.ingest}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bytes });
        if (res.status === 202) {
          const body = (await res.json()) as { id: string; seq: number };
          accepted.set(body.id, { seq: body.seq, payload: JSON.parse(Buffer.from(bytes).toString('utf8')) });
          return;
        }
        expect(res.status).to.be.within(400, 499);
      }),
      { numRuns: 200 },
    );
  });

  it('random headers (content types, idempotency keys, huge values): a 4xx or a 202, never a 5xx', async () => {
    // Any byte a header value may legally carry (RFC 9110 field-value: VCHAR, SP, HTAB, obs-text).
    const header = fc.string({ unit: 'binary', maxLength: 200 }).map((s) => [...s].filter((c) => c === '\t' || (c >= ' ' && c !== '\x7f' && c <= '\xff')).join('').trim());
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(header, fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'application/json; charset=bogus', 'text/plain', '')),
        fc.option(header, { nil: undefined }),
        fc.integer({ min: 0, max: 40_000 }),
        async (contentType, key, padding) => {
          const headers: Record<string, string> = {};
          try {
            new Headers({ 'content-type': contentType });
            headers['content-type'] = contentType;
          } catch {
            // Not even sendable as a header; skip it.
          }
          if (key !== undefined) {
            try {
              new Headers({ 'idempotency-key': key });
              headers['idempotency-key'] = key;
            } catch {
              // not sendable
            }
          }
          if (padding > 0) headers['x-padding'] = 'p'.repeat(padding);
          const res = await request(`${stack.ingest}/api/messages`, { method: 'POST', headers, body: '{"hostile":"headers"}' });
          expect(res.status === 202 || (res.status >= 400 && res.status < 500), `status ${res.status}`).to.equal(true);
          if (res.status === 202) {
            const body = (await res.json()) as { id: string; seq: number; duplicate: boolean };
            if (!body.duplicate) accepted.set(body.id, { seq: body.seq, payload: { hostile: 'headers' } });
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('random query strings and ids on query: a 200, 400 or 404, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 100 }), fc.string({ unit: 'binary', maxLength: 60 }), async (query, id) => {
        const list = await request(`${stack.query}/api/messages?${encodeURI(query)}`);
        expect([200, 400]).to.include(list.status);
        const one = await request(`${stack.query}/api/messages/${encodeURIComponent(id)}`);
        expect([200, 400, 404]).to.include(one.status);
      }),
      { numRuns: 200 },
    );
  });

  it('stores and pushes every accepted message exactly as it was sent', async () => {
    // The object half of the 300 JSON cases alone makes well over 50 (about 150).
    expect(accepted.size).to.be.greaterThan(50);
    const lastSeq = Math.max(...[...accepted.values()].map((a) => a.seq));
    await client.waitForSeq(lastSeq, 30_000);
    const frames = new Map(client.frames.filter((f) => f.type === 'message').map((f) => [f.id, f]));
    for (const [id, { seq, payload }] of accepted) {
      expect(frames.get(id)?.seq).to.equal(seq);
      expect(frames.get(id)?.payload).to.deep.equal(payload);
    }
    for (const [id, { payload }] of accepted) {
      let stored: { payload: unknown } | undefined;
      await waitFor(`message ${id} persisted`, async () => {
        const res = await fetch(`${stack.query}/api/messages/${id}`);
        if (res.status !== 200) return false;
        stored = (await res.json()) as { payload: unknown };
        return true;
      });
      expect(stored!.payload).to.deep.equal(payload);
    }
  });

  it('times out a slowloris body instead of holding the socket', async () => {
    const url = new URL(stack.ingest);
    const socket = connectTcp({ host: url.hostname, port: Number(url.port) });
    await new Promise((resolve) => socket.once('connect', resolve));
    const auth = Object.entries(suiteHeaders(stack.ingest)).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(`POST /api/messages HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"slow":`);
    let answer = '';
    socket.on('data', (d) => (answer += String(d)));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await waitFor('the server to give up on the slow body', async () => socket.destroyed || socket.readableEnded, 30_000, 100);
    await closed;
    expect(answer === '' || /^HTTP\/1\.1 (408|400)/.test(answer), answer.slice(0, 80)).to.equal(true);
  });

  it('survives a flood of connections and keeps answering', async () => {
    const url = new URL(stack.ingest);
    const sockets: Socket[] = [];
    for (let i = 0; i < 2000; i++) {
      const s = connectTcp({ host: url.hostname, port: Number(url.port) });
      s.on('error', () => undefined);
      sockets.push(s);
    }
    const res = await request(`${stack.ingest}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"during":"flood"}' });
    expect(res.status).to.equal(202);
    for (const s of sockets) s.destroy();
    expect((await request(`${stack.ingest}/healthz`)).status).to.equal(200);
  });
});
