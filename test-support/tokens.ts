/**
 * Tokens for tests, minted with jose: HS256 with a shared secret, RS256/ES256 with generated
 * key pairs published as a JWKS by a tiny local HTTP server, and the broken kinds a client
 * could send (alg none, a wrong signature, expired).
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type JWK, type JWTPayload } from 'jose';

export const TEST_SECRET = 'falcon-test-secret-0123456789abcdef0123';
export const ALL_SCOPES = 'messages:write messages:read messages:subscribe';

export interface Claims {
  sub?: string;
  scope?: string;
  iss?: string;
  aud?: string | string[];
  /** Seconds from now (negative: already expired). Default one hour. */
  expiresIn?: number;
  extra?: JWTPayload;
}

function jwt(claims: Claims): SignJWT {
  const now = Math.floor(Date.now() / 1000);
  const token = new SignJWT({ ...(claims.scope === undefined ? {} : { scope: claims.scope }), ...claims.extra })
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expiresIn ?? 3600));
  if (claims.sub !== undefined) token.setSubject(claims.sub);
  if (claims.iss !== undefined) token.setIssuer(claims.iss);
  if (claims.aud !== undefined) token.setAudience(claims.aud);
  return token;
}

/** HS256 with the secret's UTF-8 bytes, as AUTH_JWT_SECRET is used. */
export function mintToken(claims: Claims = {}, secret = TEST_SECRET): Promise<string> {
  return jwt({ sub: 'test-client', scope: ALL_SCOPES, ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(secret));
}

/** An unsecured JWT (`alg: none`), which every verifier must refuse. */
export function unsecuredToken(claims: Claims = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return new UnsecuredJWT({ sub: 'test-client', scope: ALL_SCOPES, ...claims.extra }).setIssuedAt(now).setExpirationTime(now + 3600).encode();
}

/** The same claims under a signature that belongs to nothing (last byte of the MAC changed). */
export function tamperSignature(token: string): string {
  const [head, body, sig] = token.split('.');
  const bytes = base64url.decode(sig!);
  bytes[bytes.length - 1]! ^= 0xff;
  return `${head}.${body}.${base64url.encode(bytes)}`;
}

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  publicJwk: JWK;
  sign(claims?: Claims): Promise<string>;
}

export async function createSigningKey(alg: 'RS256' | 'ES256', kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    publicJwk,
    sign: (claims = {}) => jwt({ sub: 'test-client', scope: ALL_SCOPES, ...claims }).setProtectedHeader({ alg, kid, typ: 'JWT' }).sign(privateKey),
  };
}

export interface JwksServer {
  url: string;
  /** Replaces the published keys (a rotation). */
  publish(keys: SigningKey[]): void;
  /** How many times the key set was fetched. */
  fetches(): number;
  close(): Promise<void>;
}

/** A JWKS endpoint on a free local port. */
export async function startJwksServer(keys: SigningKey[]): Promise<JwksServer> {
  let published = keys;
  let count = 0;
  const server: Server = createServer((req, res) => {
    count++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: published.map((k) => k.publicJwk) }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    publish: (next) => {
      published = next;
    },
    fetches: () => count,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
