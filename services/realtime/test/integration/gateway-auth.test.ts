import { expect } from 'chai';
import type { ServiceRun } from '../../../../test-support/service-process.js';
import { openSse, type SseRefusal } from '../../../../test-support/sse-client.js';
import { mintToken, tamperSignature, TEST_SECRET } from '../../../../test-support/tokens.js';
import { openClient } from '../../../../test-support/ws-client.js';
import { waitFor } from '../../../../scripts/stack.js';
import { useGatewayFixture } from './gateway-fixture.js';

interface Refusal {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** /ws and /sse behind AUTH_JWT_SECRET: the token check is the HTTP answer, before any upgrade or stream. */
describe('realtime gateway with auth on', function () {
  this.timeout(60_000);
  const fixture = useGatewayFixture();
  let service: ServiceRun;

  beforeEach(async () => {
    service = await fixture.start({ AUTH_JWT_SECRET: TEST_SECRET });
  });

  const wsUrl = (query = '') => `ws://127.0.0.1:${service.port}/ws${query}`;
  const sseUrl = (query = '') => `${service.url}/sse${query}`;

  /** How each transport refuses: the rejected upgrade's or stream's HTTP answer. */
  const transports = {
    '/ws': (query: string, headers: Record<string, string> = {}) => openClient(wsUrl(query), headers).then(() => expect.fail('the upgrade was accepted'), (err: Refusal) => err),
    '/sse': (query: string, headers: Record<string, string> = {}) => openSse(sseUrl(query), headers).then(() => expect.fail('the stream was accepted'), (err: SseRefusal) => err as Refusal),
  };

  function expectRefusal(refusal: Refusal, status: number, kind: string, challenge: RegExp): void {
    expect(refusal.status).to.equal(status);
    expect(refusal.headers['content-type']).to.equal('application/problem+json');
    expect(refusal.headers['www-authenticate']).to.match(challenge);
    expect((JSON.parse(refusal.body) as { type: string }).type).to.match(new RegExp(`/${kind}$`));
  }

  for (const [name, refuse] of Object.entries(transports)) {
    it(`refuses ${name} without a token, with a bad one and without the scope: 401/403 problem before any upgrade`, async () => {
      expectRefusal(await refuse(''), 401, 'unauthorized', /^Bearer realm="falcon"$/);
      const forged = tamperSignature(await mintToken());
      expectRefusal(await refuse('', { authorization: `Bearer ${forged}` }), 401, 'unauthorized', /error="invalid_token"/);
      expectRefusal(await refuse(`?access_token=${forged}`), 401, 'unauthorized', /error="invalid_token"/);
      expectRefusal(await refuse('', { authorization: `Bearer ${await mintToken({ expiresIn: -60 })}` }), 401, 'unauthorized', /error="invalid_token"/);
      const readOnly = await mintToken({ scope: 'messages:read' });
      expectRefusal(await refuse('', { authorization: `Bearer ${readOnly}` }), 403, 'forbidden', /error="insufficient_scope".*scope="messages:subscribe"/);
      expectRefusal(await refuse(`?since=1&access_token=${readOnly}`), 403, 'forbidden', /error="insufficient_scope"/);
      expect(await fixture.lastSeq(service)).to.equal(0);
    });
  }

  it('accepts messages:subscribe in the Authorization header or as ?access_token= on /ws and /sse', async () => {
    const token = await mintToken({ scope: 'messages:subscribe' });
    const clients = [
      fixture.track(await openClient(wsUrl(), { authorization: `Bearer ${token}` })),
      fixture.track(await openClient(wsUrl(`?access_token=${token}`))),
    ];
    const streams = [fixture.track(await openSse(sseUrl(), { authorization: `Bearer ${token}` })), fixture.track(await openSse(sseUrl(`?since=0&access_token=${token}`)))];
    await fixture.publish(2);
    for (const c of clients) await c.waitForSeq(2);
    for (const s of streams) await s.waitForSeq(2);
    // The query parameter is a credential: it is in no log line.
    expect(service.logs.map((line) => JSON.stringify(line)).join('\n')).not.to.contain(token);
  });

  it('closes a WebSocket with 1008 and ends an event stream when the token expires', async () => {
    const token = await mintToken({ scope: 'messages:subscribe', expiresIn: 3 });
    const ws = fixture.track(await openClient(wsUrl(`?access_token=${token}`)));
    const sse = fixture.track(await openSse(sseUrl(), { authorization: `Bearer ${token}` }));
    await waitFor('welcomes', () => ws.frames.length > 0 && sse.events.length > 0);
    const [{ code }] = await Promise.all([ws.closed, sse.ended]);
    expect(code).to.equal(1008);
    expect(sse.res.complete, 'the stream was ended, not cut').to.equal(true);
    await waitFor('no clients left', async () => ((await (await fetch(`${service.url}/status.json`)).json()) as { clients: number }).clients === 0);
  });

  it('serves the page, its config and the probes without a token', async () => {
    for (const path of ['/', '/app.js', '/config.json', '/status.json', '/healthz', '/readyz', '/metrics']) {
      expect((await fetch(`${service.url}${path}`)).status, path).to.equal(200);
    }
  });
});
