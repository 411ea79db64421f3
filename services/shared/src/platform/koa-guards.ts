/**
 * koa middleware in front of protected routes: a bearer token with a scope, then a rate
 * limit. Refusals are ProblemErrors, so the one problem mapper renders them.
 */
import type { Context, Middleware, Next } from 'koa';
import { authorize, authRefusal, AuthError, type Authenticator, type Principal, type Scope } from './auth.js';
import { problem, ProblemError } from './problem.js';
import type { RateLimiter } from './rate-limit.js';

/** Where requireScope leaves who called, for handlers and the rate limit. */
export function requestPrincipal(ctx: Context): Principal | undefined {
  return (ctx.state as { principal?: Principal }).principal;
}

/** Refuses with 401/403 (or 503 while the key set is unreachable) unless the token holds `scope`. */
export function requireScope(auth: Authenticator, scope: Scope): Middleware {
  return async (ctx: Context, next: Next) => {
    if (auth.enabled) {
      try {
        (ctx.state as { principal?: Principal }).principal = await authorize(auth, { authorization: ctx.req.headers.authorization }, scope);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        const refusal = authRefusal(err);
        throw new ProblemError(refusal.problem, refusal.headers);
      }
    }
    await next();
  };
}

/**
 * 429 with Retry-After once the caller is over its limit; the key is the token's sub, or the
 * client address without auth. Every answer carries the RateLimit headers.
 */
export function rateLimit(limiter: RateLimiter | undefined): Middleware {
  return async (ctx: Context, next: Next) => {
    if (limiter) {
      const principal = requestPrincipal(ctx);
      const decision = await limiter.take(principal ? `sub:${principal.sub}` : `ip:${ctx.ip}`);
      if (!decision.allowed) {
        throw new ProblemError(problem(429, 'rate-limited', `over the limit; retry in ${decision.retryAfterSeconds} s`), decision.headers);
      }
      ctx.set(decision.headers);
    }
    await next();
  };
}

/**
 * The Access-Control-Allow-Origin for CORS_ALLOW_ORIGINS: `*` (the local stack) or only the
 * listed origins. Credentials (cookies) are never allowed, so `*` never meets them; a bearer
 * token is a header the page sets itself, which Access-Control-Allow-Headers must name.
 */
export function corsOrigin(allowed: string): string | ((ctx: Context) => string) {
  if (allowed.trim() === '*') return '*';
  const origins = new Set(allowed.split(',').map((o) => o.trim()).filter((o) => o !== '*'));
  return (ctx) => (origins.has(ctx.get('origin')) ? ctx.get('origin') : '');
}

/** Response headers a cross-origin page may read: where, when to retry, why refused, limits. */
export const CORS_EXPOSED = ['Location', 'Link', 'Retry-After', 'WWW-Authenticate', 'RateLimit', 'RateLimit-Policy'];
