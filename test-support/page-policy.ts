/** Checks of the live page's security headers, shared by the unit, browser and e2e suites. */
import { expect } from 'chai';

/** A Content-Security-Policy's directives, by name. */
export function cspDirectives(policy: string | null): Map<string, string[]> {
  return new Map((policy ?? '').split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
}

/**
 * The page's files answer with nosniff, no referrer, and a policy admitting only their own
 * files, no inline script or style and no framing. Returns the policy's directives.
 */
export function expectStrictPageHeaders(headers: Headers, path: string): Map<string, string[]> {
  expect(headers.get('x-content-type-options'), path).to.equal('nosniff');
  expect(headers.get('referrer-policy'), path).to.equal('no-referrer');
  const d = cspDirectives(headers.get('content-security-policy'));
  expect(d.get('default-src'), path).to.deep.equal(["'none'"]);
  expect(d.get('script-src'), path).to.deep.equal(["'self'"]);
  expect(d.get('style-src'), path).to.deep.equal(["'self'"]);
  expect(d.get('img-src'), path).to.deep.equal(["'self'"]);
  expect(d.get('base-uri'), path).to.deep.equal(["'none'"]);
  expect(d.get('form-action'), path).to.deep.equal(["'none'"]);
  expect(d.get('frame-ancestors'), path).to.deep.equal(["'none'"]);
  return d;
}

/** The page's HTML has no inline script, style or event handler. */
export function expectNoInlineCode(html: string): void {
  expect(html, 'no inline script').not.to.match(/<script(?![^>]*\bsrc=)[^>]*>/i);
  expect(html, 'no inline style or handlers').not.to.match(/<style|\sstyle=|\son[a-z]+=/i);
}
