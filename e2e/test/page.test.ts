import { expect } from 'chai';
import { target, type Target } from '../target.js';
import { expectNoInlineCode, expectStrictPageHeaders } from '../../test-support/page-policy.js';

describe('the live page (contract: "Live page")', function () {
  let t: Target;
  before(async function () {
    this.timeout(120_000);
    t = await target();
  });

  it('is served, with its files, without a token and under a strict Content-Security-Policy', async () => {
    const page = await fetch(`${t.realtime[0]}/`);
    const html = await page.text();
    expect(page.status).to.equal(200);
    const scripts = [...html.matchAll(/<script[^>]*\bsrc="([^"]+)"/g)].map((m) => m[1]!);
    const styles = [...html.matchAll(/<link[^>]*\brel="stylesheet"[^>]*\bhref="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts, 'the page loads its script from a file').to.have.length.above(0);
    for (const path of ['/', ...scripts, ...styles]) {
      const res = await fetch(new URL(path, t.realtime[0]));
      await res.arrayBuffer();
      expect(res.status, path).to.equal(200);
      const connect = expectStrictPageHeaders(res.headers, path).get('connect-src') ?? [];
      expect(connect, path).to.include("'self'");
      // Only origins: no wildcard, no scheme-only source such as https: that admits any host.
      for (const source of connect.filter((s) => s !== "'self'")) expect(source, path).to.match(/^(https?|wss?):\/\/[^*/\s]+$/);
    }
    expectNoInlineCode(html);
  });
});
