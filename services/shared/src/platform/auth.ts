/**
 * Bearer-token authentication (RFC 6750) with JWTs, independent of any HTTP framework so koa
 * services and the uWS gateway answer identically. Signatures, claims and key sets are the
 * `jose` library's work; this module only decides which keys and algorithms are acceptable
 * and turns every failure into an AuthError.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey, type JWTPayload } from 'jose';
import { ConfigError } from './config.js';
import { problem, type Problem } from './problem.js';

/** What each scope allows (contract, "Authentication and limits"). */
export const SCOPES = {
  write: 'messages:write',
  read: 'messages:read',
  subscribe: 'messages:subscribe',
} as const;
export type Scope = (typeof SCOPES)[keyof typeof SCOPES];

export interface Principal {
  /** The token's `sub`: recorded as the message's publisher, the rate limit's key. */
  sub: string;
  scopes: ReadonlySet<string>;
  /** When the token stops being valid; long-lived connections close then. */
  expiresAt: Date | undefined;
}

/**
 * `unauthorized`: no usable token (401). `forbidden`: a valid token without the scope (403).
 * `unavailable`: the token could not be checked because the key set could not be fetched
 * (503): not the client's fault, so not a 401 that would make it drop a good token.
 */
export type AuthErrorKind = 'unauthorized' | 'forbidden' | 'unavailable';

export class AuthError extends Error {
  constructor(
    readonly kind: AuthErrorKind,
    message: string,
    /** Whether a token was presented at all: RFC 6750 section 3 adds an error code only then. */
    readonly tokenPresented: boolean,
    readonly scope?: Scope,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface AuthSettings {
  /** HS256 key material (the string's UTF-8 bytes). */
  jwtSecret: string | undefined;
  /** RS256/ES256 keys, fetched by jose and cached. */
  jwksUrl: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
  clockToleranceSeconds: number;
}

/** The auth variables, in the shared env-schema form so loadConfig reports every error at once. */
export const authEnv = {
  // 32 bytes: RFC 7518 section 3.2 wants an HS256 key at least as long as the hash.
  AUTH_JWT_SECRET: { type: 'string', minLength: 32 },
  AUTH_JWKS_URL: { type: 'string', pattern: '^https?://[^\\s]+$' },
  AUTH_ISSUER: { type: 'string', minLength: 1 },
  AUTH_AUDIENCE: { type: 'string', minLength: 1 },
  AUTH_CLOCK_TOLERANCE_SECONDS: { type: 'integer', minimum: 0, maximum: 300, default: 5 },
} as const;

export interface AuthConfig {
  AUTH_JWT_SECRET?: string;
  AUTH_JWKS_URL?: string;
  AUTH_ISSUER?: string;
  AUTH_AUDIENCE?: string;
  AUTH_CLOCK_TOLERANCE_SECONDS: number;
}

/**
 * The settings; an issuer or audience without any key is refused, because auth would then be
 * silently off while the operator believes it is on.
 */
export function authSettings(e: AuthConfig): AuthSettings {
  if ((e.AUTH_ISSUER || e.AUTH_AUDIENCE) && !e.AUTH_JWT_SECRET && !e.AUTH_JWKS_URL) {
    throw new ConfigError(['AUTH_ISSUER, AUTH_AUDIENCE: set AUTH_JWT_SECRET or AUTH_JWKS_URL too, or auth stays off']);
  }
  return {
    jwtSecret: e.AUTH_JWT_SECRET,
    jwksUrl: e.AUTH_JWKS_URL,
    issuer: e.AUTH_ISSUER,
    audience: e.AUTH_AUDIENCE,
    clockToleranceSeconds: e.AUTH_CLOCK_TOLERANCE_SECONDS,
  };
}

export interface Authenticator {
  /** False when neither a secret nor a key set is configured: everything is open. */
  readonly enabled: boolean;
  /** Verifies one token; resolves to who presented it or throws an AuthError. */
  authenticate(token: string): Promise<Principal>;
}

export interface AuthenticatorOptions {
  /** For tests: a fetch-free key set (jose's createLocalJWKSet) instead of the URL's. */
  jwks?: JWTVerifyGetKey;
  now?: () => Date;
}

// Pinned per key type: a shared secret only ever verifies HS256, a key set only RS256/ES256,
// so a token can never pick the algorithm its key is used with (RFC 8725 section 3.1).
const SECRET_ALGORITHMS = ['HS256'];
const KEY_SET_ALGORITHMS = ['RS256', 'ES256'];
const MAX_TOKEN_LENGTH = 16 * 1024;
const MAX_SUB_LENGTH = 256;

function unauthorized(message: string): AuthError {
  return new AuthError('unauthorized', message, true);
}

/** jose's error classes and codes -> what the client is told (fixed texts: nothing echoed). */
function describeFailure(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof errors.JWTExpired) return unauthorized('the token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) return unauthorized(`the token's ${err.claim} claim is not acceptable`);
  if (err instanceof errors.JWSSignatureVerificationFailed) return unauthorized('the token signature does not verify');
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthorized('the token algorithm is not accepted');
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return unauthorized('no key matches the token');
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return new AuthError('unavailable', 'the signing keys could not be fetched', true);
  if (err instanceof errors.JOSEError) return unauthorized('the token is not a valid JWT');
  // Anything else comes from fetching the key set (a refused connection, a bad TLS peer).
  if (err instanceof TypeError || (err as { name?: unknown } | null)?.name === 'AbortError') {
    return new AuthError('unavailable', 'the signing keys could not be fetched', true);
  }
  return unauthorized('the token is not a valid JWT');
}

function principalOf(payload: JWTPayload): Principal {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUB_LENGTH) {
    throw unauthorized(`the token needs a sub claim of 1 to ${MAX_SUB_LENGTH} characters`);
  }
  const scope = payload['scope'];
  const scopes = new Set(typeof scope === 'string' ? scope.split(' ').filter(Boolean) : []);
  return { sub, scopes, expiresAt: typeof payload.exp === 'number' ? new Date(payload.exp * 1000) : undefined };
}

export function createAuthenticator(settings: AuthSettings, options: AuthenticatorOptions = {}): Authenticator {
  const secret = settings.jwtSecret === undefined ? undefined : new TextEncoder().encode(settings.jwtSecret);
  // jose caches the set, refetches on an unknown kid at most once per cooldown, and never
  // fetches per request while the cache is fresh.
  const keySet =
    options.jwks ??
    (settings.jwksUrl === undefined ? undefined : createRemoteJWKSet(new URL(settings.jwksUrl), { cooldownDuration: 10_000, cacheMaxAge: 600_000, timeoutDuration: 5_000 }));
  const enabled = secret !== undefined || keySet !== undefined;
  const algorithms = [...(secret ? SECRET_ALGORITHMS : []), ...(keySet ? KEY_SET_ALGORITHMS : [])];

  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (secret && SECRET_ALGORITHMS.includes(header.alg ?? '')) return secret;
    if (keySet && KEY_SET_ALGORITHMS.includes(header.alg ?? '')) return keySet(header, token);
    throw unauthorized('the token algorithm is not accepted');
  };

  return {
    enabled,
    async authenticate(token) {
      if (!enabled) throw new AuthError('unauthorized', 'authentication is not configured', true);
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw unauthorized('the token is not a valid JWT');
      try {
        const { payload } = await jwtVerify(token, getKey, {
          algorithms,
          issuer: settings.issuer,
          audience: settings.audience,
          clockTolerance: settings.clockToleranceSeconds,
          // A token that never expires cannot be contained once stolen, and a socket opened
          // with it would never be closed (RFC 8725 section 3.10 asks for claim checks).
          requiredClaims: ['exp'],
          currentDate: options.now?.(),
        });
        return principalOf(payload);
      } catch (err) {
        throw describeFailure(err);
      }
    },
  };
}

/** The token from an `Authorization` header; undefined when none was sent. */
export function bearerToken(authorization: string | string[] | undefined): string | undefined {
  if (authorization === undefined || authorization === '') return undefined;
  if (Array.isArray(authorization)) throw unauthorized('send one Authorization header');
  // RFC 6750 section 2.1: "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 11.1).
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization);
  if (!match) throw unauthorized('the Authorization header is not "Bearer <token>"');
  return match[1];
}

export interface Credentials {
  authorization?: string | string[] | undefined;
  /** `?access_token=` (RFC 6750 section 2.3): only /ws and /sse accept it. */
  accessToken?: string | string[] | undefined;
}

/**
 * The whole check for one request: the token from the header (or the query, where allowed),
 * verified, holding `scope`. Resolves to undefined when auth is off.
 */
export async function authorize(auth: Authenticator, credentials: Credentials, scope: Scope): Promise<Principal | undefined> {
  if (!auth.enabled) return undefined;
  let token = bearerToken(credentials.authorization);
  if (token === undefined && credentials.accessToken !== undefined) {
    if (typeof credentials.accessToken !== 'string') throw unauthorized('send one access_token');
    token = credentials.accessToken;
  }
  if (token === undefined) throw new AuthError('unauthorized', 'a bearer token is required', false, scope);
  const principal = await auth.authenticate(token);
  if (!principal.scopes.has(scope)) throw new AuthError('forbidden', `the token lacks the ${scope} scope`, true, scope);
  return principal;
}

export interface AuthRefusal {
  status: number;
  headers: Record<string, string>;
  problem: Problem;
}

const quoted = (value: string) => `"${value.replace(/["\\]/g, '')}"`;

/**
 * The HTTP answer to an AuthError: 401 or 403 problem+json with the RFC 6750 section 3
 * challenge, or 503 with Retry-After when the key set is unreachable.
 */
export function authRefusal(err: AuthError): AuthRefusal {
  if (err.kind === 'unavailable') {
    return { status: 503, headers: { 'retry-after': '5' }, problem: problem(503, 'unavailable', err.message) };
  }
  const params = ['realm="falcon"'];
  if (err.kind === 'forbidden') {
    params.push('error="insufficient_scope"', `error_description=${quoted(err.message)}`);
    if (err.scope) params.push(`scope=${quoted(err.scope)}`);
  } else if (err.tokenPresented) {
    params.push('error="invalid_token"', `error_description=${quoted(err.message)}`);
  }
  const status = err.kind === 'forbidden' ? 403 : 401;
  return { status, headers: { 'www-authenticate': `Bearer ${params.join(', ')}` }, problem: problem(status, err.kind, err.message) };
}
