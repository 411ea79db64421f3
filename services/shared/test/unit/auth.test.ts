import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import fc from 'fast-check';
import { createLocalJWKSet, SignJWT } from 'jose';
import Koa from 'koa';
import {
  authorize,
  authRefusal,
  AuthError,
  authSettings,
  ConfigError,
  bearerToken,
  createAuthenticator,
  createRateLimiter,
  createSilentLogger,
  problemMiddleware,
  rateLimit,
  requireScope,
  type Authenticator,
  type AuthSettings,
} from '../../src/index.js';
import { createSigningKey, mintToken, tamperSignature, TEST_SECRET, unsecuredToken, type SigningKey } from '../../../../test-support/tokens.js';

const settings = (overrides: Partial<AuthSettings> = {}): AuthSettings => ({
  jwtSecret: TEST_SECRET,
  jwksUrl: undefined,
  issuer: undefined,
  audience: undefined,
  clockToleranceSeconds: 5,
  ...overrides,
});

async function refusal(promise: Promise<unknown>): Promise<AuthError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(AuthError);
    return err as AuthError;
  }
  throw new Error('expected an AuthError');
}

describe('createAuthenticator with AUTH_JWT_SECRET (HS256)', () => {
  const auth = createAuthenticator(settings({ issuer: 'https://issuer.test', audience: 'falcon' }));
  const good = { iss: 'https://issuer.test', aud: 'falcon' };

  it('accepts a valid token and returns its sub, scopes and expiry', async () => {
    const principal = await auth.authenticate(await mintToken({ ...good, sub: 'svc-a', scope: 'messages:write messages:read', expiresIn: 60 }));
    expect(principal.sub).to.equal('svc-a');
    expect([...principal.scopes]).to.deep.equal(['messages:write', 'messages:read']);
    expect(principal.expiresAt!.getTime()).to.be.closeTo(Date.now() + 60_000, 2_000);
  });

  it('accepts an aud array that contains the audience', async () => {
    expect((await auth.authenticate(await mintToken({ ...good, aud: ['other', 'falcon'] }))).sub).to.equal('test-client');
  });

  it('rejects a wrong signature', async () => {
    const err = await refusal(auth.authenticate(tamperSignature(await mintToken(good))));
    expect(err.kind).to.equal('unauthorized');
    expect(err.message).to.match(/signature/);
  });

  it('rejects a token signed with another secret', async () => {
    expect((await refusal(auth.authenticate(await mintToken(good, 'another-secret-0123456789abcdef0123456')))).kind).to.equal('unauthorized');
  });

  it('rejects alg none', async () => {
    const err = await refusal(auth.authenticate(unsecuredToken({ extra: good })));
    expect(err.kind).to.equal('unauthorized');
  });

  it('rejects an expired token beyond the clock tolerance, accepts one within it', async () => {
    expect((await refusal(auth.authenticate(await mintToken({ ...good, expiresIn: -30 })))).message).to.match(/expired/);
    expect((await auth.authenticate(await mintToken({ ...good, expiresIn: -2 }))).sub).to.equal('test-client');
  });

  it('rejects a wrong issuer and a wrong audience', async () => {
    expect((await refusal(auth.authenticate(await mintToken({ ...good, iss: 'https://evil.test' })))).message).to.match(/iss/);
    expect((await refusal(auth.authenticate(await mintToken({ ...good, aud: 'someone-else' })))).message).to.match(/aud/);
    expect((await refusal(auth.authenticate(await mintToken({ iss: good.iss })))).message).to.match(/aud/);
  });

  it('rejects a token without an exp', async () => {
    const forever = await new SignJWT({ scope: 'messages:write', ...good }).setProtectedHeader({ alg: 'HS256' }).setSubject('s').sign(new TextEncoder().encode(TEST_SECRET));
    expect((await refusal(auth.authenticate(forever))).message).to.match(/exp/);
  });

  it('rejects a token without a sub', async () => {
    expect((await refusal(auth.authenticate(await mintToken({ ...good, sub: undefined })))).message).to.match(/sub/);
  });

  it('rejects RS256 and ES256 tokens when only a secret is configured', async () => {
    for (const alg of ['RS256', 'ES256'] as const) {
      const key = await createSigningKey(alg, `k-${alg}`);
      expect((await refusal(auth.authenticate(await key.sign(good)))).message).to.match(/algorithm/);
    }
  });
});

describe('createAuthenticator with a key set (RS256/ES256)', () => {
  let rsa: SigningKey;
  let ec: SigningKey;
  let auth: Authenticator;

  before(async () => {
    rsa = await createSigningKey('RS256', 'rsa-1');
    ec = await createSigningKey('ES256', 'ec-1');
    auth = createAuthenticator(settings({ jwtSecret: undefined }), { jwks: createLocalJWKSet({ keys: [rsa.publicJwk, ec.publicJwk] }) });
  });

  it('accepts RS256 and ES256 tokens signed by a published key', async () => {
    expect((await auth.authenticate(await rsa.sign({ sub: 'r' }))).sub).to.equal('r');
    expect((await auth.authenticate(await ec.sign({ sub: 'e' }))).sub).to.equal('e');
  });

  it('answers unavailable (not unauthorized) while the key set cannot be fetched', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const unreachable = createAuthenticator(settings({ jwtSecret: undefined, jwksUrl: `http://127.0.0.1:${port}/jwks.json` }));
    const err = await refusal(unreachable.authenticate(await rsa.sign()));
    expect(err.kind).to.equal('unavailable');
    expect(authRefusal(err).status).to.equal(503);
  });

  it('rejects a token whose key is not published, and HS256 tokens', async () => {
    const stranger = await createSigningKey('RS256', 'rsa-unknown');
    expect((await refusal(auth.authenticate(await stranger.sign()))).kind).to.equal('unauthorized');
    expect((await refusal(auth.authenticate(await mintToken()))).message).to.match(/algorithm/);
  });
});

describe('bearerToken and authorize', () => {
  const auth = createAuthenticator(settings());

  it('reads "Bearer <token>" case-insensitively and refuses other schemes', () => {
    expect(bearerToken(undefined)).to.equal(undefined);
    expect(bearerToken('bearer abc.def.ghi')).to.equal('abc.def.ghi');
    expect(() => bearerToken('Basic dXNlcjpwYXNz')).to.throw(AuthError);
    expect(() => bearerToken(['Bearer a', 'Bearer b'])).to.throw(AuthError);
  });

  it('answers 401 without a token, 403 without the scope, the principal with it', async () => {
    const missing = await refusal(authorize(auth, {}, 'messages:read'));
    expect([missing.kind, missing.tokenPresented]).to.deep.equal(['unauthorized', false]);
    const token = await mintToken({ scope: 'messages:read' });
    expect((await refusal(authorize(auth, { authorization: `Bearer ${token}` }, 'messages:write'))).kind).to.equal('forbidden');
    expect((await authorize(auth, { authorization: `Bearer ${token}` }, 'messages:read'))!.sub).to.equal('test-client');
    expect((await authorize(auth, { accessToken: token }, 'messages:read'))!.sub).to.equal('test-client');
  });

  it('refuses an issuer or audience without any key, rather than run with auth silently off', () => {
    expect(() => authSettings({ AUTH_AUDIENCE: 'falcon', AUTH_CLOCK_TOLERANCE_SECONDS: 5 })).to.throw(ConfigError, /AUTH_JWT_SECRET or AUTH_JWKS_URL/);
    expect(authSettings({ AUTH_AUDIENCE: 'falcon', AUTH_JWT_SECRET: TEST_SECRET, AUTH_CLOCK_TOLERANCE_SECONDS: 5 }).audience).to.equal('falcon');
  });

  it('lets everything through when neither a secret nor a key set is configured', async () => {
    const open = createAuthenticator(settings({ jwtSecret: undefined }));
    expect(open.enabled).to.equal(false);
    expect(await authorize(open, {}, 'messages:write')).to.equal(undefined);
  });

  it('builds RFC 6750 challenges', () => {
    expect(authRefusal(new AuthError('unauthorized', 'a bearer token is required', false)).headers['www-authenticate']).to.equal('Bearer realm="falcon"');
    const invalid = authRefusal(new AuthError('unauthorized', 'the token has expired', true));
    expect(invalid.status).to.equal(401);
    expect(invalid.headers['www-authenticate']).to.equal('Bearer realm="falcon", error="invalid_token", error_description="the token has expired"');
    expect(invalid.problem.type).to.match(/\/unauthorized$/);
    const forbidden = authRefusal(new AuthError('forbidden', 'the token lacks the messages:read scope', true, 'messages:read'));
    expect(forbidden.status).to.equal(403);
    expect(forbidden.headers['www-authenticate']).to.match(/error="insufficient_scope".*scope="messages:read"/);
    expect(forbidden.problem.type).to.match(/\/forbidden$/);
  });

  it('never throws anything but an AuthError, whatever the header or token', async () => {
    const segment = fc.string({ unit: 'binary', maxLength: 60 });
    const b64 = fc.base64String({ maxLength: 80 }).map((s) => s.replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, ''));
    const tokenLike = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.tuple(b64, b64, b64).map((parts) => parts.join('.')),
      fc.tuple(fc.json(), fc.json(), segment).map(([h, p, s]) => [h, p, s].map((x) => Buffer.from(x).toString('base64url')).join('.')),
      fc.constantFrom('', '.', '..', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', 'eyJhbGciOiJIUzI1NiJ9.bnVsbA.sig'),
    );
    const header = fc.oneof(tokenLike.map((t) => `Bearer ${t}`), fc.string({ unit: 'binary' }), tokenLike);
    await fc.assert(
      fc.asyncProperty(header, tokenLike, async (authorization, accessToken) => {
        for (const credentials of [{ authorization }, { accessToken }]) {
          try {
            await authorize(auth, credentials, 'messages:write');
          } catch (err) {
            if (!(err instanceof AuthError)) throw err;
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('requireScope and rateLimit (koa)', () => {
  let server: Server;
  let url: string;

  before(async () => {
    const app = new Koa();
    app.use(problemMiddleware(createSilentLogger()));
    app.use(requireScope(createAuthenticator(settings()), 'messages:write'));
    app.use(rateLimit(createRateLimiter({ perSecond: 2, burst: 1, burstWindowSeconds: 10 })));
    app.use((ctx) => {
      ctx.body = { ok: true };
    });
    server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('answers 401 problem+json with a Bearer challenge, then 403, then passes', async () => {
    const none = await fetch(url);
    expect(none.status).to.equal(401);
    expect(none.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(none.headers.get('www-authenticate')).to.equal('Bearer realm="falcon"');
    const bad = await fetch(url, { headers: { authorization: 'Bearer nope' } });
    expect(bad.headers.get('www-authenticate')).to.match(/error="invalid_token"/);
    const read = await fetch(url, { headers: { authorization: `Bearer ${await mintToken({ sub: 'reader', scope: 'messages:read' })}` } });
    expect(read.status).to.equal(403);
    expect(((await read.json()) as { type: string }).type).to.match(/forbidden$/);
  });

  it('answers 429 with Retry-After and RateLimit headers past rate and burst, per sub', async () => {
    const headers = { authorization: `Bearer ${await mintToken({ sub: 'limited' })}` };
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 4; i++) {
      last = await fetch(url, { headers });
      statuses.push(last.status);
    }
    expect(statuses).to.deep.equal([200, 200, 200, 429]);
    expect(last!.headers.get('retry-after')).to.match(/^[1-9]\d*$/);
    expect(last!.headers.get('ratelimit-policy')).to.equal('"ingest";q=2;w=1, "burst";q=1;w=10');
    expect(last!.headers.get('ratelimit')).to.match(/^"ingest";r=0;t=[1-9]\d*$/);
    expect(((await last!.json()) as { type: string }).type).to.match(/rate-limited$/);
    const other = await fetch(url, { headers: { authorization: `Bearer ${await mintToken({ sub: 'someone-else' })}` } });
    expect(other.status).to.equal(200);
  });
});
