import type { Context, Middleware, Next } from 'koa';
import type { Logger } from 'pino';
import type { Probes } from './ops.js';
import { problem, PROBLEM_CONTENT_TYPE, ProblemError, type Problem } from './problem.js';

function send(ctx: Context, body: Problem, headers: Record<string, string> = {}): void {
  ctx.status = body.status;
  for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
  ctx.type = PROBLEM_CONTENT_TYPE;
  ctx.body = JSON.stringify(body);
}

/**
 * The one error mapper at the top of a koa chain. ProblemErrors pass through as they are;
 * http-errors from koa's own middleware (body parser, router) keep their 4xx status with a
 * problem body; anything else becomes a generic 500, logged once.
 */
export function problemMiddleware(log: Logger): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        send(ctx, problem(404, 'not-found', `no route for ${ctx.method} ${ctx.path}`));
      } else if (ctx.status === 405 && (ctx.body === undefined || typeof ctx.body === 'string')) {
        send(ctx, problem(405, 'method-not-allowed', `${ctx.method} is not allowed on ${ctx.path}`), { allow: String(ctx.response.get('allow') || '') });
      }
    } catch (err) {
      if (err instanceof ProblemError) {
        send(ctx, err.problem, err.headers);
        return;
      }
      const status = (err as { status?: unknown; expose?: unknown }).status;
      if (typeof status === 'number' && status >= 400 && status < 500) {
        const kind = status === 413 ? 'body-too-large' : status === 415 ? 'unsupported-media-type' : status === 404 ? 'not-found' : 'invalid-body';
        send(ctx, problem(status, kind, (err as Error).message));
        return;
      }
      log.error({ err, method: ctx.method, path: ctx.path }, 'unhandled error');
      send(ctx, problem(500, 'internal', 'an unexpected error occurred; it has been logged'));
    }
  };
}

/** /healthz, /readyz and /metrics in front of the application's routes. */
export function opsMiddleware(probes: Probes): Middleware {
  return async (ctx: Context, next: Next) => {
    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      const answer = await probes.handle(ctx.path);
      if (answer) {
        ctx.status = answer.status;
        ctx.type = answer.contentType;
        ctx.body = answer.body;
        return;
      }
    }
    await next();
  };
}

const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

/** The level an error koa reports through its `error` event deserves. */
export function koaErrorLevel(err: unknown, clientGone = false): 'debug' | 'info' | 'error' {
  const e = err as { code?: unknown; status?: unknown; expose?: unknown } | null;
  // A client that hung up in the middle of a response (an aborted export) is routine.
  if (clientGone || (typeof e?.code === 'string' && CLIENT_GONE.has(e.code))) return 'debug';
  if (typeof e?.status === 'number' && e.status < 500) return 'info';
  return 'error';
}

/**
 * Routes koa's `error` event to the logger: without a listener koa prints a multi-line stack
 * with console.error, which is neither JSON nor leveled.
 */
export function logKoaErrors(app: { on(event: 'error', listener: (err: Error, ctx?: Context) => void): unknown }, log: Logger): void {
  app.on('error', (err, ctx) => {
    const clientGone = Boolean(ctx?.req.destroyed && !ctx.res.writableFinished);
    log[koaErrorLevel(err, clientGone)]({ err, method: ctx?.method, path: ctx?.path }, 'request error');
  });
}
