import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import cors from '@koa/cors';
import { Router } from '@koa/router';
import Koa, { type Context } from 'koa';
import {
  CORS_EXPOSED,
  corsOrigin,
  isTransientDbError,
  isUuid,
  opsMiddleware,
  problemError,
  problemMiddleware,
  requireScope,
  SCOPES,
  type Authenticator,
  type Logger,
  type Probes,
} from '@falcon/shared';
import { createSlots, cutOffStalledReader, type ExportLimits } from './exports.js';
import { oneLine } from './copy-json.js';
import type { QueryMetrics } from './metrics.js';
import type { ExportFormat, MessageRepository, Page } from './repository.js';
import { parseTimestamp, TIME_RANGE_PARAMETERS, type TimeRange } from './time-range.js';

export interface AppDeps {
  log: Logger;
  probes: Probes;
  repository: MessageRepository;
  metrics: QueryMetrics;
  openApi: Record<string, unknown>;
  defaultLimit: number;
  exports: ExportLimits;
  /** Bearer tokens with messages:read on every /api route; absent or disabled: open. */
  auth?: Authenticator;
  /** CORS_ALLOW_ORIGINS, for the live page on the realtime origin; absent: none. */
  corsOrigins?: string;
}

export interface PageQuery {
  after: number;
  limit: number;
}

const MAX_LIMIT = 1000;
const PAGE_PARAMETERS = ['after', 'limit'] as const;

type Query = Record<string, string | string[] | undefined>;
type FieldErrors = { path: string; message: string }[];

function readPage(query: Query, defaultLimit: number, known: readonly string[], errors: FieldErrors): PageQuery | undefined {
  for (const [name, value] of Object.entries(query)) {
    if (!known.includes(name)) errors.push({ path: `query:${name}`, message: `is not a known parameter (${known.join(', ')})` });
    else if (Array.isArray(value)) errors.push({ path: `query:${name}`, message: 'must be given once' });
  }
  const after = query['after'];
  const limit = query['limit'];
  if (typeof after === 'string' && !/^\d{1,15}$/.test(after)) errors.push({ path: 'query:after', message: 'must be a non-negative integer' });
  if (typeof limit === 'string' && (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_LIMIT)) {
    errors.push({ path: 'query:limit', message: `must be an integer from 1 to ${MAX_LIMIT}` });
  }
  if (after === undefined && limit === undefined) return undefined;
  return { after: after === undefined ? 0 : Number(after), limit: limit === undefined ? defaultLimit : Number(limit) };
}

const invalid = (errors: FieldErrors) => problemError(400, 'invalid-parameter', 'invalid query parameters', errors);

/**
 * Validates ?after and ?limit. Returns undefined when neither is given (the full list).
 * Unknown or repeated parameters are rejected rather than ignored, so a typo is visible.
 */
export function parsePageQuery(query: Query, defaultLimit: number): PageQuery | undefined {
  const errors: FieldErrors = [];
  const page = readPage(query, defaultLimit, PAGE_PARAMETERS, errors);
  if (errors.length) throw invalid(errors);
  return page;
}

export interface ListQuery {
  page: PageQuery | undefined;
  range: TimeRange;
}

/** ?after, ?limit, and the ?from/?to bounds on receivedAt (RFC 3339), every error at once. */
export function parseListQuery(query: Query, defaultLimit: number): ListQuery {
  const errors: FieldErrors = [];
  const page = readPage(query, defaultLimit, [...PAGE_PARAMETERS, ...TIME_RANGE_PARAMETERS], errors);
  const range: TimeRange = {};
  for (const name of TIME_RANGE_PARAMETERS) {
    const value = query[name];
    if (typeof value !== 'string') continue;
    const parsed = parseTimestamp(value);
    if (parsed === undefined) errors.push({ path: `query:${name}`, message: 'must be an RFC 3339 date-time, e.g. 2026-11-27T10:15:30.123Z' });
    else range[name] = parsed;
  }
  if (errors.length) throw invalid(errors);
  return { page, range };
}

function databaseProblem(err: unknown, log: Logger): Error {
  if (isTransientDbError(err)) {
    log.warn({ err }, 'database unavailable');
    return problemError(503, 'unavailable', 'the database is unavailable; retry shortly', undefined, { 'retry-after': '1' });
  }
  return err as Error;
}

/** ok, rejected (4xx), unavailable (503), error (5xx), or aborted: the answer was not finished. */
function outcomeOf(status: number, finished: boolean): string {
  if (!finished) return 'aborted';
  if (status < 400) return 'ok';
  if (status === 503) return 'unavailable';
  return status < 500 ? 'rejected' : 'error';
}

/**
 * Counts every answer once, when its last byte is written or its connection closes: for a
 * streamed export that is the end of the export, not the moment its headers went out.
 */
function requestMetrics(metrics: QueryMetrics): Koa.Middleware {
  return async (ctx, next) => {
    const endTimer = metrics.requestSeconds.startTimer();
    ctx.res.once('close', () => {
      const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? (['/healthz', '/readyz', '/metrics'].includes(ctx.path) ? ctx.path : 'unmatched');
      endTimer({ route });
      metrics.requests.inc({ route, outcome: outcomeOf(ctx.status, ctx.res.writableFinished) });
    });
    await next();
  };
}

const NDJSON = 'application/x-ndjson';

/** NDJSON only when the client asks for it; anything else (or no Accept) keeps the array. */
function exportFormat(ctx: Context): ExportFormat {
  return ctx.accepts('application/json', NDJSON) === NDJSON ? 'ndjson' : 'array';
}

/** The next page's link keeps the client's other parameters (the time range) as given. */
function sendPage(ctx: Context, page: Page, path: string, limit: number, format: ExportFormat = 'array'): void {
  if (page.hasMore && page.lastSeq !== undefined) {
    const next = new URLSearchParams({ after: String(page.lastSeq), limit: String(limit) });
    for (const name of TIME_RANGE_PARAMETERS) {
      const value = ctx.query[name];
      if (typeof value === 'string') next.set(name, value);
    }
    ctx.set('link', `<${path}?${next.toString()}>; rel="next"`);
  }
  ctx.type = format === 'ndjson' ? NDJSON : 'application/json';
  ctx.body = format === 'ndjson' ? page.docs.map((doc) => `${oneLine(doc)}\n`).join('') : `[${page.docs.join(',')}]`;
}

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = true;
  const router = new Router();
  const exportSlots = createSlots(deps.exports.maxConcurrent);
  const db = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      throw databaseProblem(err, deps.log);
    }
  };

  router.get('/openapi.json', (ctx) => {
    ctx.body = deps.openApi;
  });

  router.get('/api/messages', async (ctx) => {
    const { page: paging, range } = parseListQuery(ctx.query, deps.defaultLimit);
    const format = exportFormat(ctx);
    ctx.vary('Accept'); // the same URL answers JSON or NDJSON
    if (paging) {
      sendPage(ctx, await db(() => deps.repository.page(paging.after, paging.limit, range)), '/api/messages', paging.limit, format);
      return;
    }
    // Exports are bounded so that they can never take every pool connection: paging and
    // lookups keep answering while they run.
    const release = exportSlots.tryAcquire();
    if (!release) {
      throw problemError(503, 'unavailable', `${deps.exports.maxConcurrent} full exports are already running; retry later or page with ?after=`, undefined, {
        'retry-after': String(deps.exports.retryAfterSeconds),
      });
    }
    deps.metrics.exportsActive.inc();
    // Commit to 200 only once Postgres has started answering; an error before that is a
    // clean problem response, an error after it aborts the body (a truncated JSON array).
    const body = new PassThrough();
    const done = deps.repository.streamAll(body, { format, range, statementTimeoutMs: deps.exports.statementTimeoutMs }).finally(() => {
      release();
      deps.metrics.exportsActive.dec();
    });
    done.catch((err: unknown) => deps.log.warn({ err }, 'message stream aborted'));
    await db(() => Promise.race([once(body, 'readable'), done]));
    cutOffStalledReader(ctx.res, deps.exports.stallTimeoutMs, () => {
      deps.metrics.exportsCut.inc({ reason: 'stalled' });
      deps.log.warn({ stallTimeoutMs: deps.exports.stallTimeoutMs }, 'export reader stopped reading; cut off');
    });
    ctx.type = format === 'ndjson' ? NDJSON : 'application/json';
    ctx.body = body;
  });

  router.get('/api/messages/:id', async (ctx) => {
    const id = ctx.params['id'] ?? '';
    if (!isUuid(id)) throw problemError(400, 'invalid-parameter', 'id must be a UUID', [{ path: 'path:id', message: 'must be a UUID' }]);
    const doc = await db(() => deps.repository.byId(id.toLowerCase()));
    if (doc === undefined) throw problemError(404, 'not-found', `no message with id ${id}`);
    ctx.type = 'application/json';
    ctx.body = doc;
  });

  router.get('/api/dead-letters', async (ctx) => {
    const paging = parsePageQuery(ctx.query, deps.defaultLimit) ?? { after: 0, limit: deps.defaultLimit };
    sendPage(ctx, await db(() => deps.repository.deadLetters(paging.after, paging.limit)), '/api/dead-letters', paging.limit);
  });

  app.use(requestMetrics(deps.metrics));
  app.use(problemMiddleware(deps.log));
  if (deps.corsOrigins) {
    app.use(cors({ origin: corsOrigin(deps.corsOrigins), allowMethods: ['GET', 'HEAD', 'OPTIONS'], allowHeaders: ['Authorization', 'Accept'], exposeHeaders: CORS_EXPOSED, maxAge: 600 }));
  }
  app.use(opsMiddleware(deps.probes));
  // Every /api path, known or not, needs the token: an unauthenticated caller learns nothing
  // about routes. The probes above and /openapi.json stay open.
  if (deps.auth) {
    const guard = requireScope(deps.auth, SCOPES.read);
    app.use((ctx, next) => (ctx.path.startsWith('/api/') ? guard(ctx, next) : next()));
  }
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
