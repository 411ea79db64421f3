/**
 * Per-key request limits in this process's memory (rate-limiter-flexible), with the answer
 * headers of draft-ietf-httpapi-ratelimit-headers (RateLimit-Policy and RateLimit, Structured
 * Field lists). Per process: with N replicas behind a load balancer a key gets up to N times
 * the limit.
 */
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

export interface RateLimitSettings {
  /** Sustained messages per second per key. */
  perSecond: number;
  /** Extra messages a key may send above the rate, once per burst window. */
  burst: number;
  burstWindowSeconds: number;
}

export interface RateDecision {
  allowed: boolean;
  /** RateLimit-Policy and RateLimit, for every answer; Retry-After too when refused. */
  headers: Record<string, string>;
  retryAfterSeconds: number;
}

export interface RateLimiter {
  take(key: string): Promise<RateDecision>;
}

const POLICY = 'ingest';

export function createRateLimiter(settings: RateLimitSettings): RateLimiter {
  const rate = new RateLimiterMemory({ keyPrefix: 'rate', points: settings.perSecond, duration: 1 });
  const limiter =
    settings.burst > 0 ? new BurstyRateLimiter(rate, new RateLimiterMemory({ keyPrefix: 'burst', points: settings.burst, duration: settings.burstWindowSeconds })) : rate;
  const policy = [`"${POLICY}";q=${settings.perSecond};w=1`, ...(settings.burst > 0 ? [`"burst";q=${settings.burst};w=${settings.burstWindowSeconds}`] : [])].join(', ');

  const decision = (allowed: boolean, res: RateLimiterRes): RateDecision => {
    const seconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    const headers: Record<string, string> = {
      'ratelimit-policy': policy,
      ratelimit: `"${POLICY}";r=${Math.max(0, res.remainingPoints)};t=${seconds}`,
    };
    // The draft: Retry-After must not point earlier than the reset parameter t.
    if (!allowed) headers['retry-after'] = String(seconds);
    return { allowed, headers, retryAfterSeconds: seconds };
  };

  return {
    async take(key) {
      try {
        return decision(true, await limiter.consume(key));
      } catch (err) {
        // A memory store only rejects with its result; anything else is a bug worth throwing.
        if (err instanceof RateLimiterRes) return decision(false, err);
        throw err;
      }
    },
  };
}
