import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { jserrors } from '@nats-io/jetstream/internal';
import { errors } from '@nats-io/transport-node';
import { expect } from 'chai';
import { pino } from 'pino';
import { Counter, createAuthenticator, createMetricsRegistry, createProbes, createRateLimiter, createSilentLogger, Histogram, type AcceptedResponse } from '@falcon/shared';
import { createApp, jsonDepth, readIdempotencyKey, type AppDeps } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { compilePayloadSchema } from '../../src/payload-schema.js';
import { classifyPublishError, dedupeId, type Publisher } from '../../src/publisher.js';
import { mintToken, TEST_SECRET } from '../../../../test-support/tokens.js';

interface Published {
  payloadJson: string;
  key: string | undefined;
  publisher?: string;
}

/** Publishes into `published`, or fails every publish with `failure`. */
function fakePublisher(published: Published[], failure?: Error): Publisher {
  return {
    async publish(payloadJson, key, publisher) {
      if (failure) throw failure;
      published.push({ payloadJson, key, ...(publisher === undefined ? {} : { publisher }) });
      const answer: AcceptedResponse = { id: '0193f3c6-5a7e-7cc2-9a4b-2f3d1c0e9b11', seq: published.length, receivedAt: '2026-11-27T10:15:30.123Z', duplicate: false };
      return answer;
    },
  };
}

async function serve(overrides: Partial<AppDeps>): Promise<{ url: string; server: Server }> {
  const registry = createMetricsRegistry('ingest', 'test');
  const probes = createProbes(registry, {});
  probes.markStarted();
  const app = createApp({
    log: createSilentLogger(),
    probes,
    publisher: fakePublisher([]),
    metrics: {
      requests: new Counter({ name: 'r', help: 'r', labelNames: ['outcome'] as const, registers: [registry] }),
      publishSeconds: new Histogram({ name: 'p', help: 'p', registers: [registry] }),
    },
    openApi: { openapi: '3.1.0' },
    validatePayload: undefined,
    canPublish: () => true,
    maxBytes: 1024,
    maxDepth: 8,
    retryAfterSeconds: 2,
    corsOrigins: '*',
    ...overrides,
  });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** What a real no-responders publish throws: JetStreamNotEnabled around RequestError around NoRespondersError. */
function noResponders(): Error {
  const request = new errors.RequestError('no responders', { cause: new errors.NoRespondersError('falcon.messages') });
  return new jserrors.JetStreamNotEnabled('jetstream is not enabled', { cause: request });
}

const apiError = (status: number, errCode: number, description: string) => new JetStreamApiError({ code: status, err_code: errCode, description });

const post = (url: string, body: BodyInit, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(`${url}/api/messages`, { method: 'POST', headers, body });

describe('ingest POST /api/messages (fake stream)', () => {
  let published: Published[];
  let url: string;
  let server: Server;

  beforeEach(async () => {
    published = [];
    ({ url, server } = await serve({ publisher: fakePublisher(published) }));
  });
  afterEach(() => server.close());

  it('answers 202 with id, seq, receivedAt, duplicate and a Location header', async () => {
    const res = await post(url, '{"a":1}');
    expect(res.status).to.equal(202);
    expect(res.headers.get('location')).to.equal('/api/messages/0193f3c6-5a7e-7cc2-9a4b-2f3d1c0e9b11');
    expect(await res.json()).to.deep.equal({ id: '0193f3c6-5a7e-7cc2-9a4b-2f3d1c0e9b11', seq: 1, receivedAt: '2026-11-27T10:15:30.123Z', duplicate: false });
  });

  it('publishes the body text exactly as sent and passes the Idempotency-Key', async () => {
    const body = '{ "b" : [1, 2.50, "\\u00e9"], "a": {} }';
    await post(url, body, { 'content-type': 'application/json; charset=utf-8', 'idempotency-key': 'order-42' });
    expect(published).to.deep.equal([{ payloadJson: body, key: 'order-42' }]);
  });

  it('answers 415 for any other content type', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx']) {
      const res = await post(url, '{"a":1}', { 'content-type': type });
      expect(res.status, type).to.equal(415);
      expect(res.headers.get('content-type')).to.equal('application/problem+json');
    }
    const res = await fetch(`${url}/api/messages`, { method: 'POST', body: '{"a":1}', headers: {} });
    expect(res.status).to.equal(415);
  });

  it('answers 400 for malformed JSON and for bodies that are not objects', async () => {
    for (const body of ['{"a":', '', '   ', 'null', 'true', '[1,2]', '"text"', '42', '{"a":1}{']) {
      const res = await post(url, body);
      expect(res.status, body).to.equal(400);
      const problem = await res.json();
      expect(problem).to.include.keys('type', 'title', 'status', 'detail');
    }
    expect(published).to.have.length(0);
  });

  it('answers 400 for a body that is not valid UTF-8 and publishes nothing', async () => {
    const invalid = {
      'a byte that never starts a character': [0xff],
      'a lone continuation byte': [0x80],
      'an overlong encoding of "/"': [0xc0, 0xaf],
      'a UTF-16 surrogate': [0xed, 0xa0, 0x80],
      'a truncated sequence': [0xe2, 0x82],
      'Latin-1 "é"': [0xe9],
    };
    for (const [name, bytes] of Object.entries(invalid)) {
      const body = Buffer.concat([Buffer.from('{"text":"'), Buffer.from(bytes), Buffer.from('"}')]);
      const res = await post(url, body, { 'content-type': 'application/json; charset=utf-8' });
      expect(res.status, name).to.equal(400);
      expect(res.headers.get('content-type')).to.equal('application/problem+json');
      expect(((await res.json()) as { type: string }).type, name).to.match(/invalid-encoding$/);
    }
    expect(published).to.have.length(0);
  });

  it('accepts valid UTF-8 of every length, including U+FFFD itself, unaltered', async () => {
    const body = '{"text":"aé€😀\ufffd�"}';
    expect((await post(url, Buffer.from(body, 'utf8'))).status).to.equal(202);
    expect(published).to.deep.equal([{ payloadJson: body, key: undefined }]);
  });

  it('reads a gzip-encoded body and still refuses invalid UTF-8 inside it', async () => {
    const good = await post(url, gzipSync('{"zipped":true}'), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(good.status).to.equal(202);
    expect(published.map((p) => p.payloadJson)).to.deep.equal(['{"zipped":true}']);
    const bad = await post(url, gzipSync(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(bad.status).to.equal(400);
    const unknown = await post(url, '{}', { 'content-type': 'application/json', 'content-encoding': 'zstd-unknown' });
    expect(unknown.status).to.equal(415);
  });

  it('answers 400 for a payload nested deeper than the limit', async () => {
    const deep = await post(url, `{"a":${'['.repeat(8)}${']'.repeat(8)}}`);
    expect(deep.status).to.equal(400);
    expect(((await deep.json()) as { type: string }).type).to.match(/validation$/);
    expect((await post(url, `{"a":${'['.repeat(7)}${']'.repeat(7)}}`)).status).to.equal(202);
  });

  it('answers 413 above the limit', async () => {
    const res = await post(url, JSON.stringify({ a: 'x'.repeat(2000) }));
    expect(res.status).to.equal(413);
    expect(((await res.json()) as { status: number }).status).to.equal(413);
  });

  it('answers 400 for a bad Idempotency-Key', async () => {
    for (const key of ['with space', 'x'.repeat(129), 'é']) {
      const res = await post(url, '{}', { 'content-type': 'application/json', 'idempotency-key': encodeURI(key) === key ? key : key });
      expect(res.status, key).to.equal(400);
      expect(((await res.json()) as { errors: { path: string }[] }).errors[0]!.path).to.equal('header:Idempotency-Key');
    }
  });

  it('answers CORS preflight for the page and exposes Location', async () => {
    const res = await fetch(`${url}/api/messages`, {
      method: 'OPTIONS',
      headers: { origin: 'http://127.0.0.1:8080', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,idempotency-key' },
    });
    expect(res.status).to.equal(204);
    expect(res.headers.get('access-control-allow-origin')).to.equal('*');
    expect(res.headers.get('access-control-allow-headers')).to.match(/Idempotency-Key/i);
  });

  it('answers 405 for other methods and 404 for other paths, as problems', async () => {
    const del = await fetch(`${url}/api/messages`, { method: 'DELETE' });
    expect(del.status).to.equal(405);
    expect(del.headers.get('content-type')).to.equal('application/problem+json');
    const missing = await fetch(`${url}/nope`);
    expect(missing.status).to.equal(404);
    expect(((await missing.json()) as { status: number }).status).to.equal(404);
  });
});

describe('ingest with auth and a rate limit', () => {
  let published: Published[];
  let url: string;
  let server: Server;
  const auth = createAuthenticator({ jwtSecret: TEST_SECRET, jwksUrl: undefined, issuer: undefined, audience: undefined, clockToleranceSeconds: 5 });

  beforeEach(async () => {
    published = [];
    ({ url, server } = await serve({ publisher: fakePublisher(published), auth, rateLimiter: createRateLimiter({ perSecond: 1, burst: 1, burstWindowSeconds: 10 }) }));
  });
  afterEach(() => server.close());

  it('answers 401 without a token and 403 without messages:write, publishing nothing', async () => {
    const none = await post(url, '{"a":1}');
    expect(none.status).to.equal(401);
    expect(none.headers.get('www-authenticate')).to.equal('Bearer realm="falcon"');
    const reader = await post(url, '{"a":1}', { 'content-type': 'application/json', authorization: `Bearer ${await mintToken({ scope: 'messages:read' })}` });
    expect(reader.status).to.equal(403);
    expect(published).to.deep.equal([]);
  });

  it("publishes with the token's sub as publisher", async () => {
    const res = await post(url, '{"a":1}', { 'content-type': 'application/json', authorization: `Bearer ${await mintToken({ sub: 'svc-7' })}` });
    expect(res.status).to.equal(202);
    expect(res.headers.get('ratelimit')).to.match(/^"ingest";r=0;t=1$/);
    expect(published).to.deep.equal([{ payloadJson: '{"a":1}', key: undefined, publisher: 'svc-7' }]);
  });

  it('answers 429 past the rate and burst, before reading the body, and publishes nothing more', async () => {
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${await mintToken({ sub: 'svc-8' })}` };
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(url, '{"a":1}', headers)).status);
    const refused = await post(url, 'not even json', headers);
    expect([...statuses, refused.status]).to.deep.equal([202, 202, 429, 429]);
    expect(refused.headers.get('retry-after')).to.match(/^[1-9]\d*$/);
    expect(published).to.have.length(2);
  });

  it('lets a browser send Authorization cross-origin and read the auth and limit headers', async () => {
    const res = await fetch(`${url}/api/messages`, { method: 'OPTIONS', headers: { origin: 'http://page.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
    expect(res.headers.get('access-control-allow-headers')).to.match(/Authorization/);
    expect(res.headers.get('access-control-allow-credentials')).to.equal(null);
    const post401 = await fetch(`${url}/api/messages`, { method: 'POST', headers: { origin: 'http://page.test', 'content-type': 'application/json' }, body: '{}' });
    expect(post401.headers.get('access-control-expose-headers')).to.match(/WWW-Authenticate/);
  });
});

describe('ingest rate limit by client address (no auth)', () => {
  const limited = (trustedProxyHops: number) =>
    serve({ publisher: fakePublisher([]), trustedProxyHops, rateLimiter: createRateLimiter({ perSecond: 1, burst: 0, burstWindowSeconds: 10 }) });
  const json = (forwardedFor: string) => ({ 'content-type': 'application/json', 'x-forwarded-for': forwardedFor });

  it('ignores X-Forwarded-For by default, so a direct client cannot choose its own key', async () => {
    const { url, server } = await limited(0);
    try {
      const statuses = [];
      for (const spoofed of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) statuses.push((await post(url, '{"a":1}', json(spoofed))).status);
      expect(statuses).to.deep.equal([202, 429, 429]);
    } finally {
      server.close();
    }
  });

  it('keys on the hop its own proxy appended when told one proxy is in front', async () => {
    const { url, server } = await limited(1);
    try {
      // The client writes the first entry; the proxy appends the address it saw.
      const first = await post(url, '{"a":1}', json('1.1.1.1, 203.0.113.7'));
      const sameClientSpoofing = await post(url, '{"a":1}', json('9.9.9.9, 203.0.113.7'));
      const otherClient = await post(url, '{"a":1}', json('1.1.1.1, 203.0.113.8'));
      expect([first.status, sameClientSpoofing.status, otherClient.status]).to.deep.equal([202, 429, 202]);
    } finally {
      server.close();
    }
  });
});

describe('ingest CORS', () => {
  const preflight = (url: string, origin: string) =>
    fetch(`${url}/api/messages`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,idempotency-key' } });

  it('admits only the configured origins, with the Authorization header', async () => {
    const { url, server } = await serve({ corsOrigins: 'https://falcon.example.com, https://other.example' });
    try {
      const page = await preflight(url, 'https://falcon.example.com');
      expect(page.headers.get('access-control-allow-origin')).to.equal('https://falcon.example.com');
      expect(page.headers.get('access-control-allow-headers')).to.match(/Authorization/);
      expect(page.headers.get('vary')).to.match(/Origin/i);
      const stranger = await preflight(url, 'https://evil.example');
      expect(stranger.headers.get('access-control-allow-origin')).to.equal(null);
      const posted = await post(url, '{}', { origin: 'https://evil.example', 'content-type': 'application/json' });
      expect(posted.headers.get('access-control-allow-origin')).to.equal(null);
    } finally {
      server.close();
    }
  });

  it('admits no other origin when none is configured', async () => {
    const { url, server } = await serve({ corsOrigins: undefined });
    try {
      expect((await preflight(url, 'http://127.0.0.1:8080')).headers.get('access-control-allow-origin')).to.equal(null);
    } finally {
      server.close();
    }
  });
});

describe('ingest metrics', () => {
  it('counts every answer once, by outcome', async () => {
    const registry = createMetricsRegistry('ingest', 'test');
    const requests = new Counter({ name: 'falcon_ingest_requests_total', help: 'r', labelNames: ['outcome'] as const, registers: [registry] });
    const { url, server } = await serve({ metrics: { requests, publishSeconds: new Histogram({ name: 'p', help: 'p', registers: [registry] }) } });
    await post(url, '{"a":1}');
    await post(url, '{"a":1}', { 'content-type': 'text/plain' });
    await post(url, '[1]');
    await post(url, '{}', { 'content-type': 'application/json', 'idempotency-key': 'has space' });
    server.close();
    const values = Object.fromEntries((await requests.get()).values.map((v) => [v.labels.outcome, v.value]));
    expect(values).to.deep.equal({ accepted: 1, rejected: 3 });
  });
});

describe('ingest when the stream cannot acknowledge', () => {
  it('answers 503 with Retry-After at once while NATS is disconnected', async () => {
    const { url, server } = await serve({ canPublish: () => false });
    const res = await post(url, '{}');
    expect(res.status).to.equal(503);
    expect(res.headers.get('retry-after')).to.equal('2');
    server.close();
  });

  for (const [name, failure] of [
    ['no PubAck arrives before the timeout', new errors.TimeoutError()],
    ['nothing answers on the subject (no responders)', noResponders()],
    ['the connection is closed', new errors.ClosedConnectionError()],
    ['the connection is draining', new errors.DrainingConnectionError()],
    ['JetStream answers 503 (temporarily unavailable)', apiError(503, 10008, 'JetStream system temporarily unavailable')],
  ] as const) {
    it(`answers 503 with Retry-After when ${name}`, async () => {
      const { url, server } = await serve({ publisher: fakePublisher([], failure) });
      const res = await post(url, '{}');
      expect(res.status).to.equal(503);
      expect(res.headers.get('retry-after')).to.equal('2');
      server.close();
    });
  }

  it('answers a logged 500, not "retry later", when the publish fails for any other reason', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    for (const failure of [apiError(400, 10054, 'message size exceeds maximum allowed'), new errors.PermissionViolationError('denied', 'publish', 'falcon.messages'), new Error('stream no longer holds seq 7')]) {
      const { url, server } = await serve({ log, publisher: fakePublisher([], failure) });
      const res = await post(url, '{}');
      expect(res.status, failure.message).to.equal(500);
      expect(res.headers.get('retry-after')).to.equal(null);
      expect(((await res.json()) as { type: string }).type).to.match(/internal$/);
      server.close();
    }
    const errorsLogged = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 50);
    expect(errorsLogged.map((l) => l.msg)).to.deep.equal(['publish failed', 'publish failed', 'publish failed']);
  });
});

describe('classifyPublishError', () => {
  it('reads the library error classes and JetStream codes, through the cause chain', () => {
    expect(classifyPublishError(new errors.TimeoutError())).to.equal('unavailable');
    expect(classifyPublishError(noResponders())).to.equal('unavailable');
    expect(classifyPublishError(new errors.ConnectionError('connection refused'))).to.equal('unavailable');
    expect(classifyPublishError(apiError(404, JetStreamApiCodes.StreamNotFound, 'stream not found'))).to.equal('unavailable');
    expect(classifyPublishError(apiError(503, 10077, 'maximum messages exceeded'))).to.equal('unavailable');
    const notEnabled = apiError(503, JetStreamApiCodes.JetStreamNotEnabledForAccount, 'jetstream not enabled for account');
    expect(classifyPublishError(new jserrors.JetStreamNotEnabled(notEnabled.message, { cause: notEnabled }))).to.equal('internal');
    expect(classifyPublishError(apiError(400, 10054, 'message size exceeds maximum allowed'))).to.equal('internal');
    expect(classifyPublishError(new errors.PermissionViolationError('denied', 'publish', 'x'))).to.equal('internal');
    expect(classifyPublishError(new Error('anything else'))).to.equal('internal');
    expect(classifyPublishError('not even an Error')).to.equal('internal');
  });
});

describe('ingest payload schema', () => {
  it('answers 400 with every violation as { path, message }', async () => {
    const validatePayload = compilePayloadSchema({
      type: 'object',
      required: ['text'],
      properties: { text: { type: 'string', maxLength: 5 }, at: { type: 'string', format: 'date-time' } },
    });
    const { url, server } = await serve({ validatePayload });
    const bad = await post(url, '{"text":"too long","at":"yesterday"}');
    expect(bad.status).to.equal(400);
    const problem = (await bad.json()) as { errors: unknown[] };
    expect(problem.errors).to.deep.include.members([
      { path: '/text', message: 'must NOT have more than 5 characters' },
      { path: '/at', message: 'must match format "date-time"' },
    ]);
    expect((await post(url, '{"text":"ok"}')).status).to.equal(202);
    server.close();
  });
});

describe('jsonDepth', () => {
  it('counts nesting levels of objects and arrays', () => {
    expect(jsonDepth({})).to.equal(1);
    expect(jsonDepth({ a: 1, b: 'x' })).to.equal(1);
    expect(jsonDepth({ a: [{ b: [] }] })).to.equal(4);
    expect(jsonDepth({ a: [], b: { c: { d: {} } } })).to.equal(4);
    expect(jsonDepth(JSON.parse(`{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`))).to.equal(5001);
  });
});

describe('readIdempotencyKey and dedupeId', () => {
  it('accepts 1 to 128 visible ASCII characters', () => {
    expect(readIdempotencyKey(undefined)).to.equal(undefined);
    expect(readIdempotencyKey('a')).to.equal('a');
    expect(readIdempotencyKey('~!'.repeat(64))).to.have.length(128);
    for (const bad of ['', ' ', 'a b', '\t', 'x'.repeat(129), 'ü', ['a', 'b']]) {
      expect(() => readIdempotencyKey(bad as string), String(bad)).to.throw();
    }
  });

  it('keeps keys and generated ids in separate dedupe namespaces', () => {
    expect(dedupeId('id-1')).to.equal('id:id-1');
    expect(dedupeId('id-1', 'id-1')).to.equal('key:id-1');
  });
});

describe('ingest configuration of auth and the rate limit', () => {
  it('reads the auth variables, the limit and a burst defaulting to the limit', () => {
    const config = loadConfig({ AUTH_JWT_SECRET: TEST_SECRET, AUTH_AUDIENCE: 'falcon', INGEST_RATE_LIMIT: '50' });
    expect(config.auth).to.include({ jwtSecret: TEST_SECRET, audience: 'falcon', clockToleranceSeconds: 5 });
    expect(config.rateLimit).to.deep.equal({ perSecond: 50, burst: 50, burstWindowSeconds: 10 });
    expect(loadConfig({}).rateLimit).to.equal(undefined);
  });

  it('refuses a short secret, a burst without a limit, and contradictory NATS logins', () => {
    expect(() => loadConfig({ AUTH_JWT_SECRET: 'short' })).to.throw(/AUTH_JWT_SECRET/);
    expect(() => loadConfig({ INGEST_RATE_BURST: '5' })).to.throw(/INGEST_RATE_BURST: needs INGEST_RATE_LIMIT/);
    expect(() => loadConfig({ NATS_TOKEN: 't', NATS_USER: 'u', NATS_PASSWORD: 'p' })).to.throw(/only one way to log in/);
  });
});
