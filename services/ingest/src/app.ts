import cors from '@koa/cors';
import { Router } from '@koa/router';
import Koa from 'koa';
import type { ValidateFunction } from 'ajv';
import {
  CORS_EXPOSED,
  corsOrigin,
  opsMiddleware,
  rateLimit,
  requestPrincipal,
  requireScope,
  SCOPES,
  type Authenticator,
  type RateLimiter,
  problemError,
  problemMiddleware,
  ProblemError,
  type AcceptedResponse,
  type Counter,
  type Histogram,
  type Logger,
  type Probes,
} from '@falcon/shared';
import { readJsonBody } from './json-body.js';
import { classifyPublishError, type Publisher } from './publisher.js';

export interface IngestMetrics {
  requests: Counter<'outcome'>;
  publishSeconds: Histogram;
}

export interface AppDeps {
  log: Logger;
  probes: Probes;
  publisher: Publisher;
  metrics: IngestMetrics;
  openApi: Record<string, unknown>;
  /** Validates the payload against the operator's JSON Schema; undefined accepts any object. */
  validatePayload: ValidateFunction | undefined;
  /** False while NATS is disconnected: answer 503 at once rather than after the timeout. */
  canPublish: () => boolean;
  maxBytes: number;
  /** Deepest nesting accepted; Postgres refuses JSON nested ~20,000 levels deep. */
  maxDepth: number;
  retryAfterSeconds: number;
  /** CORS_ALLOW_ORIGINS, for the live page on the realtime origin; absent: none. */
  corsOrigins?: string | undefined;
  /** Bearer tokens with messages:write; absent or disabled: open. */
  auth?: Authenticator;
  /** Per sub (or client address without auth); absent: no limit. */
  rateLimiter?: RateLimiter;
  /**
   * Proxies in front of ingest that append X-Forwarded-For (INGEST_TRUSTED_PROXY_HOPS): the
   * client address is the hop the outermost of them added. 0 (the default) trusts no header,
   * so a client that reaches ingest directly cannot pick its own rate-limit key.
   */
  trustedProxyHops?: number;
}

/** 1 to 128 visible ASCII characters (RFC 9110 VCHAR), as the contract says. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** How deeply a parsed JSON value nests (an empty object or array counts as one level). */
export function jsonDepth(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > deepest) deepest = depth;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return deepest;
}

export function readIdempotencyKey(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value) || !IDEMPOTENCY_KEY.test(value)) {
    throw problemError(400, 'invalid-idempotency-key', 'Idempotency-Key must be 1 to 128 visible ASCII characters', [
      { path: 'header:Idempotency-Key', message: 'must match ^[\\x21-\\x7e]{1,128}$' },
    ]);
  }
  return value;
}

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  // The client address (rate-limit key without auth) is the hop our own proxies appended, never
  // the first X-Forwarded-For entry, which the client writes itself.
  const hops = deps.trustedProxyHops ?? 0;
  app.proxy = hops > 0;
  app.maxIpsCount = hops;
  const router = new Router();

  const unavailable = (detail: string) =>
    problemError(503, 'unavailable', detail, undefined, { 'retry-after': String(deps.retryAfterSeconds) });

  router.get('/openapi.json', (ctx) => {
    ctx.body = deps.openApi;
  });

  router.post(
    '/api/messages',
    // Every answer counted once, by outcome, from what the handlers below produced.
    async (ctx, next) => {
      try {
        await next();
      } catch (err) {
        const status = err instanceof ProblemError ? err.problem.status : 500;
        deps.metrics.requests.inc({ outcome: status === 503 ? 'unavailable' : status < 500 ? 'rejected' : 'error' });
        throw err;
      }
      deps.metrics.requests.inc({ outcome: (ctx.body as AcceptedResponse).duplicate ? 'duplicate' : 'accepted' });
    },
    // Who and how often before reading a byte of the body: refused requests publish nothing.
    ...(deps.auth ? [requireScope(deps.auth, SCOPES.write)] : []),
    rateLimit(deps.rateLimiter),
    async (ctx, next) => {
      if (!ctx.request.is('application/json')) {
        throw problemError(415, 'unsupported-media-type', `Content-Type must be application/json, not ${ctx.get('content-type') || 'absent'}`);
      }
      await next();
    },
    async (ctx) => {
      const { text, value: body } = await readJsonBody(ctx.req, deps.maxBytes);
      const raw = text.trim();
      if (typeof body !== 'object' || body === null || Array.isArray(body) || !raw.startsWith('{')) {
        throw problemError(400, 'invalid-body', 'body must be a JSON object', [{ path: '', message: 'must be object' }]);
      }
      const key = readIdempotencyKey(ctx.req.headers['idempotency-key']);
      // Valid JSON that Postgres would refuse ("stack depth limit exceeded") is refused here,
      // up front, instead of being accepted and dead-lettered later.
      if (jsonDepth(body) > deps.maxDepth) {
        throw problemError(400, 'validation', `payload nests deeper than ${deps.maxDepth} levels`, [{ path: '', message: `must not nest deeper than ${deps.maxDepth} levels` }]);
      }
      if (deps.validatePayload && !deps.validatePayload(body)) {
        const errors = (deps.validatePayload.errors ?? []).map((e) => ({ path: e.instancePath, message: e.message ?? 'is invalid' }));
        throw problemError(400, 'validation', 'payload does not satisfy the configured schema', errors);
      }
      if (!deps.canPublish()) {
        throw unavailable('the message stream is unreachable; retry with the same Idempotency-Key');
      }
      const endTimer = deps.metrics.publishSeconds.startTimer();
      let accepted: AcceptedResponse;
      try {
        // The raw text, not a re-serialisation: the stored payload is the client's own bytes.
        accepted = await deps.publisher.publish(raw, key, requestPrincipal(ctx)?.sub);
      } catch (err) {
        if (classifyPublishError(err) === 'internal') {
          deps.log.error({ err }, 'publish failed');
          throw problemError(500, 'internal', 'the message could not be published; the error has been logged');
        }
        deps.log.warn({ err }, 'publish not acknowledged');
        throw unavailable('the message stream did not acknowledge in time; retry with the same Idempotency-Key');
      } finally {
        endTimer();
      }
      ctx.status = 202;
      ctx.set('location', `/api/messages/${accepted.id}`);
      ctx.body = accepted;
    },
  );

  app.use(problemMiddleware(deps.log));
  if (deps.corsOrigins) app.use(cors({ origin: corsOrigin(deps.corsOrigins), allowMethods: ['GET', 'POST', 'OPTIONS'], allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key'], exposeHeaders: CORS_EXPOSED, maxAge: 600 }));
  app.use(opsMiddleware(deps.probes));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
