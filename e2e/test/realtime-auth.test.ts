/**
 * /ws and /sse with auth on, black box: a local stack of its own (AUTH_JWT_SECRET), its
 * gateway reached only through HTTP, WebSocket and the event stream.
 */
import { expect } from 'chai';
import { startLocalStack, type LocalStack } from '../target.js';
import { openSse, type SseRefusal } from '../../test-support/sse-client.js';
import { mintToken, tamperSignature, TEST_SECRET, unsecuredToken } from '../../test-support/tokens.js';
import { openClient } from '../../test-support/ws-client.js';
import { waitFor } from '../../scripts/stack.js';

interface Refusal {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('realtime authentication (own stack, auth on)', function () {
  this.timeout(120_000);
  let stack: LocalStack;
  let gateway: string;

  before(async () => {
    stack = await startLocalStack({ suiteAuth: false, replicas: { realtime: 1, persister: 1 }, env: { AUTH_JWT_SECRET: TEST_SECRET } });
    gateway = stack.realtime[0]!;
  });

  after(async () => {
    await stack?.stop();
  });

  const ws = (query = '') => `${gateway.replace(/^http/, 'ws')}/ws${query}`;
  const sse = (query = '') => `${gateway}/sse${query}`;
  const refusedBy = {
    '/ws': (query: string, headers: Record<string, string> = {}) => openClient(ws(query), headers).then(() => expect.fail('upgraded'), (e: Refusal) => e),
    '/sse': (query: string, headers: Record<string, string> = {}) => openSse(sse(query), headers).then(() => expect.fail('streamed'), (e: SseRefusal) => e as Refusal),
  };

  /** What a client can tell from a refusal: status, problem kind, challenge scheme and error code. */
  function summary(refusal: Refusal): { status: number; kind: string; scheme: string; error: string | undefined } {
    expect(refusal.headers['content-type']).to.equal('application/problem+json');
    const body = JSON.parse(refusal.body) as { type: string; status: number };
    expect(body.status).to.equal(refusal.status);
    const challenge = String(refusal.headers['www-authenticate'] ?? '');
    return { status: refusal.status, kind: body.type.replace(/^.*\//, ''), scheme: challenge.split(' ')[0]!, error: /error="(\w+)"/.exec(challenge)?.[1] };
  }

  for (const [name, refused] of Object.entries(refusedBy)) {
    it(`answers ${name} with 401 or 403 problem+json and a Bearer challenge before any upgrade`, async () => {
      const valid = await mintToken({ sub: 'e2e-watcher' });
      const unauthorized = (error?: string) => ({ status: 401, kind: 'unauthorized', scheme: 'Bearer', error });
      const cases: [string, string, Record<string, string>, ReturnType<typeof summary>][] = [
        ['no token', '', {}, unauthorized()],
        ['wrong signature', `?access_token=${tamperSignature(valid)}`, {}, unauthorized('invalid_token')],
        ['alg none', '', { authorization: `Bearer ${unsecuredToken()}` }, unauthorized('invalid_token')],
        ['expired', '', { authorization: `Bearer ${await mintToken({ expiresIn: -60 })}` }, unauthorized('invalid_token')],
        ['not a JWT', '?access_token=not-a-token', {}, unauthorized('invalid_token')],
        ['no subscribe scope', `?access_token=${await mintToken({ scope: 'messages:read messages:write' })}`, {}, { status: 403, kind: 'forbidden', scheme: 'Bearer', error: 'insufficient_scope' }],
      ];
      for (const [what, query, headers, expected] of cases) expect(summary(await refused(query, headers)), what).to.deep.equal(expected);
    });
  }

  it('lets a token with messages:subscribe watch, in the header or as access_token', async () => {
    const token = await mintToken({ sub: 'e2e-watcher', scope: 'messages:subscribe' });
    const byHeader = await openClient(ws(), { authorization: `Bearer ${token}` });
    const byQuery = await openSse(sse(`?access_token=${token}`));
    try {
      await waitFor('welcomes', () => byHeader.frames.length > 0 && byQuery.events.length > 0);
      expect(byHeader.frames[0]!.type).to.equal('welcome');
      expect(byQuery.events[0]!.type).to.equal('welcome');
    } finally {
      await byHeader.close();
      await byQuery.close();
    }
  });

  it('closes a WebSocket with 1008, and ends an event stream, when the token expires', async () => {
    const token = await mintToken({ sub: 'e2e-short', scope: 'messages:subscribe', expiresIn: 3 });
    const socket = await openClient(ws(`?access_token=${token}`));
    const stream = await openSse(sse(), { authorization: `Bearer ${token}` });
    const started = Date.now();
    const [{ code }] = await Promise.all([socket.closed, stream.ended]);
    expect(code).to.equal(1008);
    expect(stream.res.complete, 'the stream ended cleanly').to.equal(true);
    expect(Date.now() - started).to.be.below(10_000);
  });

  it('serves the page and the probes without a token', async () => {
    for (const path of ['/', '/healthz', '/readyz', '/metrics']) expect((await fetch(`${gateway}${path}`)).status, path).to.equal(200);
  });
});
