/**
 * What the live page is told (its config) and what it is served with (its security headers).
 * Both depend on the Host the browser asked for only where the operator left the ingest and
 * query URLs to be derived from it.
 */
import { DEFAULT_PORTS } from '@falcon/shared';
import type { Config } from './config.js';

export type PageSettings = Pick<Config, 'publicIngestUrl' | 'publicQueryUrl' | 'pageToken'>;

// host[:port] with a DNS name, IPv4 or bracketed IPv6 address (RFC 3986 section 3.2.2), and
// nothing else: the value goes into a response header, where a space or `;` would add to the policy.
const HOST = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

/** The request's Host header when it is a plain host[:port]; undefined otherwise. */
export function requestHost(header: string): string | undefined {
  return HOST.test(header) ? header.toLowerCase() : undefined;
}

/** Where the page posts and reads: the operator's public URLs, else its own host on the contract's ports. */
export function pageUrls(settings: PageSettings, hostHeader: string): { ingestUrl: string; queryUrl: string } {
  const hostname = requestHost(hostHeader)?.replace(/:\d+$/, '') ?? '127.0.0.1';
  return {
    ingestUrl: settings.publicIngestUrl ?? `http://${hostname}:${DEFAULT_PORTS.ingest}`,
    queryUrl: settings.publicQueryUrl ?? `http://${hostname}:${DEFAULT_PORTS.query}`,
  };
}

/** The page's runtime configuration (/config.json), with the operator's page token when set. */
export function pageConfig(settings: PageSettings, hostHeader: string): Record<string, unknown> {
  return { ...pageUrls(settings, hostHeader), ...(settings.pageToken === undefined ? {} : { token: settings.pageToken }) };
}

/**
 * The Content-Security-Policy of the page: its own files only, no inline script or style, and
 * connections only to its own origin and the ingest and query origins it is configured with.
 * CSP3 lets 'self' match ws: and wss: on the page's own host and port (CSP3 section 6.7.2.8),
 * as Chromium and Firefox do; Safari before 17 does not, so the WebSocket origin is named too.
 */
export function contentSecurityPolicy(settings: PageSettings, hostHeader: string): string {
  const host = requestHost(hostHeader);
  const connect = new Set(["'self'"]);
  if (host) {
    connect.add(`ws://${host}`);
    connect.add(`wss://${host}`);
  }
  const { ingestUrl, queryUrl } = pageUrls(settings, hostHeader);
  for (const url of [ingestUrl, queryUrl]) connect.add(new URL(url).origin);
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src ${[...connect].join(' ')}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Headers on the page and every one of its static files. */
export function pageHeaders(settings: PageSettings, hostHeader: string): Record<string, string> {
  return {
    'content-security-policy': contentSecurityPolicy(settings, hostHeader),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
}
