import type uWS from 'uWebSockets.js';
import { authorize, AuthError, authRefusal, problem, SCOPES, type Authenticator, type Logger, type Principal } from '@falcon/shared';
import { writeProblem } from './http-routes.js';

/** The token a /ws or /sse request carries, read while uWS' request object is still valid. */
export interface SubscribeCredentials {
  authorization: string | undefined;
  accessToken: string | undefined;
}

export function readCredentials(req: uWS.HttpRequest): SubscribeCredentials {
  return {
    authorization: req.getHeader('authorization') || undefined,
    // RFC 6750 section 2.3, for browsers' WebSocket and EventSource, which cannot set headers.
    accessToken: req.getQuery('access_token') || undefined,
  };
}

/**
 * Runs `proceed` with who is subscribing once the token holds messages:subscribe, or writes the
 * refusal (401/403 problem+json with the Bearer challenge) as the HTTP answer, before any
 * upgrade or event stream. With auth off it runs at once, inside uWS' handler; otherwise after
 * the check, corked, and only if the client is still there: uWS aborts the process on any use
 * of a response after its abort.
 */
export function admitSubscriber(
  res: uWS.HttpResponse,
  credentials: SubscribeCredentials,
  deps: { auth: Authenticator; log: Logger },
  proceed: (principal: Principal | undefined) => void,
): void {
  if (!deps.auth.enabled) {
    proceed(undefined);
    return;
  }
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  authorize(deps.auth, credentials, SCOPES.subscribe).then(
    (principal) => {
      if (!aborted) res.cork(() => proceed(principal));
    },
    (err: unknown) => {
      if (aborted) return;
      if (err instanceof AuthError) {
        const refusal = authRefusal(err);
        writeProblem(res, refusal.status, refusal.problem, refusal.headers);
        return;
      }
      deps.log.error({ err }, 'subscriber token check failed');
      writeProblem(res, 500, problem(500, 'internal', 'the token could not be checked'));
    },
  );
}

// setTimeout's delay is a signed 32-bit number of milliseconds; a longer one fires at once.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `expire` at `expiresAt` (a token's exp), however far away; returns the cancel. The
 * contract closes a connection whose token expires (WebSocket 1008).
 */
export function atExpiry(expiresAt: Date | undefined, expire: () => void, now: () => number = Date.now): () => void {
  if (expiresAt === undefined) return () => {};
  let timer: NodeJS.Timeout;
  const left = () => expiresAt.getTime() - now();
  // Always from a timer, never during the caller's own set-up (a token within the clock
  // tolerance is already past its exp); re-armed when a timer fires early or the wait is long.
  const arm = () => {
    timer = setTimeout(() => (left() <= 0 ? expire() : arm()), Math.max(0, Math.min(left(), MAX_TIMER_MS)));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
