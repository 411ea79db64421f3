/**
 * Authentication and limits, black box: a local stack of its own with auth on (a shared
 * secret and a JWKS served here, issuer, audience, a rate limit), driven only through HTTP.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { startLocalStack, target, type LocalStack } from '../target.js';
import { waitFor } from '../../scripts/stack.js';
import { createSigningKey, mintToken, startJwksServer, tamperSignature, TEST_SECRET, unsecuredToken, type JwksServer, type SigningKey } from '../../test-support/tokens.js';

const ISSUER = 'https://issuer.e2e.test';
const AUDIENCE = 'falcon-e2e';
const RATE = 3;
const BURST = 2;
const good = { iss: ISSUER, aud: AUDIENCE };

interface Refusal {
  status: number;
  kind: string;
  challenge: string | null;
}

async function refusal(res: Response): Promise<Refusal> {
  const body = (await res.json()) as { type: string; status: number; detail: string };
  expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
  expect(body.status).to.equal(res.status);
  return { status: res.status, kind: body.type.replace(/^.*\//, ''), challenge: res.headers.get('www-authenticate') };
}

describe('authentication and limits (own stack, auth on)', function () {
  this.timeout(120_000);
  let stack: LocalStack;
  let jwks: JwksServer;
  let rsa: SigningKey;
  let ec: SigningKey;

  before(async () => {
    rsa = await createSigningKey('RS256', 'rsa-1');
    ec = await createSigningKey('ES256', 'ec-1');
    jwks = await startJwksServer([rsa, ec]);
    stack = await startLocalStack({
      suiteAuth: false,
      env: {
        AUTH_JWT_SECRET: TEST_SECRET,
        AUTH_JWKS_URL: jwks.url,
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
        INGEST_RATE_LIMIT: String(RATE),
        INGEST_RATE_BURST: String(BURST),
      },
    });
  });

  after(async () => {
    await stack?.stop();
    await jwks?.close();
  });

  const post = (headers: Record<string, string>, body = '{"e2e":"auth"}') =>
    fetch(`${stack.ingest}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const endpoints = () => [
    { name: 'POST /api/messages', scope: 'messages:write', call: (h: Record<string, string>) => post(h) },
    { name: 'GET /api/messages', scope: 'messages:read', call: (h: Record<string, string>) => fetch(`${stack.query}/api/messages?after=0&limit=1`, { headers: h }) },
    { name: 'GET /api/messages/{id}', scope: 'messages:read', call: (h: Record<string, string>) => fetch(`${stack.query}/api/messages/0193f3c6-5a7e-7cc2-9a4b-2f3d1c0e9b11`, { headers: h }) },
  ];

  it('refuses each endpoint without a token: 401 unauthorized with a Bearer challenge', async () => {
    for (const e of endpoints()) {
      expect(await refusal(await e.call({})), e.name).to.deep.equal({ status: 401, kind: 'unauthorized', challenge: 'Bearer realm="falcon"' });
    }
  });

  it('refuses a wrong signature, alg none, an expired token, a wrong issuer and a wrong audience with invalid_token', async () => {
    const bad = {
      'wrong signature': tamperSignature(await mintToken({ ...good, sub: 'e2e-bad' })),
      'another secret': await mintToken(good, 'not-the-configured-secret-0123456789abcdef'),
      'alg none': unsecuredToken({ extra: good }),
      expired: await mintToken({ ...good, expiresIn: -60 }),
      'wrong issuer': await mintToken({ ...good, iss: 'https://evil.test' }),
      'wrong audience': await mintToken({ ...good, aud: 'someone-else' }),
      'unknown key': await (await createSigningKey('ES256', 'not-published')).sign(good),
      garbage: 'not.a.jwt',
    };
    for (const e of endpoints()) {
      for (const [what, token] of Object.entries(bad)) {
        const r = await refusal(await e.call(bearer(token)));
        expect([r.status, r.kind], `${e.name}: ${what}`).to.deep.equal([401, 'unauthorized']);
        expect(r.challenge, `${e.name}: ${what}`).to.match(/^Bearer realm="falcon", error="invalid_token"/);
      }
    }
  });

  it('answers 403 insufficient_scope to a valid token without the endpoint scope', async () => {
    for (const e of endpoints()) {
      const other = e.scope === 'messages:write' ? 'messages:read messages:subscribe' : 'messages:write messages:subscribe';
      const r = await refusal(await e.call(bearer(await mintToken({ ...good, sub: 'e2e-scopes', scope: other }))));
      expect([r.status, r.kind], e.name).to.deep.equal([403, 'forbidden']);
      expect(r.challenge).to.match(/error="insufficient_scope"/);
    }
  });

  it('accepts valid HS256, RS256 and ES256 tokens (aud as an array too)', async () => {
    const tokens = [await mintToken({ ...good, sub: 'e2e-hs' }), await rsa.sign({ ...good, sub: 'e2e-rs' }), await ec.sign({ ...good, sub: 'e2e-es', aud: ['x', AUDIENCE] })];
    for (const token of tokens) {
      expect((await post(bearer(token))).status).to.equal(202);
      expect((await fetch(`${stack.query}/api/messages?after=0&limit=1`, { headers: bearer(token) })).status).to.equal(200);
    }
  });

  it('picks up a rotated key set: a token with a new kid is accepted once the new key is published', async () => {
    const next = await createSigningKey('RS256', 'rsa-2');
    const token = await next.sign({ ...good, sub: 'e2e-rotated' });
    expect((await post(bearer(token))).status).to.equal(401);
    jwks.publish([next, ec]);
    // jose refetches on an unknown kid at most once per cooldown (10 s).
    await waitFor('the rotated key to be accepted', async () => (await post(bearer(token))).status === 202, 30_000, 500);
    expect((await post(bearer(await rsa.sign({ ...good, sub: 'e2e-retired' })))).status).to.equal(401);
  });

  it('never answers 5xx to random and malformed Authorization headers', async () => {
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 });
    const segment = fc.oneof(fc.base64String({ maxLength: 120 }), printable);
    const header = fc.oneof(
      printable,
      printable.map((t) => `Bearer ${t}`),
      fc.tuple(segment, segment, segment).map((parts) => `Bearer ${parts.join('.')}`),
      fc.tuple(fc.json(), fc.json()).map(([h, p]) => `Bearer ${Buffer.from(h).toString('base64url')}.${Buffer.from(p).toString('base64url')}.c2ln`),
    );
    await fc.assert(
      fc.asyncProperty(header, async (authorization) => {
        for (const e of endpoints()) {
          const res = await e.call({ authorization });
          await res.arrayBuffer();
          expect(res.status, `${e.name} with ${JSON.stringify(authorization)}`).to.be.oneOf([401, 403]);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('keeps probes and metrics open without a token', async () => {
    for (const url of [stack.ingest, stack.query, ...stack.realtime, ...stack.persister]) {
      for (const path of ['/healthz', '/readyz', '/metrics']) expect((await fetch(`${url}${path}`)).status, `${url}${path}`).to.equal(200);
    }
  });

  it('answers 429 with Retry-After and RateLimit headers under a burst, stores none of those, and recovers', async () => {
    const headers = bearer(await mintToken({ ...good, sub: 'e2e-burst' }));
    const marker = `burst-${Date.now()}`;
    const answers = await Promise.all(Array.from({ length: RATE + BURST + 6 }, (_, i) => post(headers, JSON.stringify({ marker, i }))));
    const limited = answers.filter((r) => r.status === 429);
    expect(limited.length).to.be.greaterThan(0);
    expect(answers.filter((r) => r.status === 202).length).to.be.at.most(RATE * 2 + BURST);
    const r = limited[0]!;
    expect(Number(r.headers.get('retry-after'))).to.be.greaterThan(0);
    expect(r.headers.get('ratelimit-policy')).to.equal(`"ingest";q=${RATE};w=1, "burst";q=${BURST};w=10`);
    expect(r.headers.get('ratelimit')).to.match(/^"ingest";r=0;t=\d+$/);
    expect((await refusal(r)).kind).to.equal('rate-limited');
    const acceptedIds = await Promise.all(answers.filter((a) => a.status === 202).map(async (a) => ((await a.json()) as { id: string }).id));
    // Recovery: after Retry-After the same client is accepted again.
    await waitFor('the limit to let e2e-burst through again', async () => (await post(headers, JSON.stringify({ marker, after: true }))).status === 202, 30_000, 250);
    // Nothing refused was stored: only the accepted ones (and the recovery message) arrive.
    const read = bearer(await mintToken({ ...good, sub: 'e2e-reader', scope: 'messages:read' }));
    await waitFor('the accepted burst to be persisted', async () => {
      const all = (await (await fetch(`${stack.query}/api/messages`, { headers: read })).json()) as { payload: { marker?: string } }[];
      return all.filter((m) => m.payload.marker === marker).length === acceptedIds.length + 1;
    });
  });

  it("stores the token's sub as publisher and shows it in query", async () => {
    const accepted = (await (await post(bearer(await mintToken({ ...good, sub: 'e2e-publisher' })), '{"who":"me"}')).json()) as { id: string };
    const read = bearer(await mintToken({ ...good, sub: 'e2e-reader', scope: 'messages:read' }));
    let message: Record<string, unknown> = {};
    await waitFor('the message to be persisted', async () => {
      const res = await fetch(`${stack.query}/api/messages/${accepted.id}`, { headers: read });
      if (res.status !== 200) return false;
      message = (await res.json()) as Record<string, unknown>;
      return true;
    });
    expect(message).to.include({ id: accepted.id, publisher: 'e2e-publisher' });
  });
});

describe('publisher without authentication', function () {
  this.timeout(120_000);

  it('is absent from a message accepted without a token; with auth on such a post is a 401', async () => {
    const t = await target();
    // An explicit empty Authorization: no token, even when the suite sends one by default.
    const res = await fetch(`${t.ingest}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: '' }, body: '{"anonymous":true}' });
    if (res.status === 401) {
      expect(res.headers.get('www-authenticate')).to.equal('Bearer realm="falcon"');
      return;
    }
    expect(res.status).to.equal(202);
    const { id } = (await res.json()) as { id: string };
    let message: Record<string, unknown> = {};
    await waitFor('the message to be persisted', async () => {
      const got = await fetch(`${t.query}/api/messages/${id}`);
      if (got.status !== 200) return false;
      message = (await got.json()) as Record<string, unknown>;
      return true;
    });
    expect(message).to.not.have.property('publisher');
  });
});
