import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../../../../test-support/config-problems.js';
import { contentSecurityPolicy, pageConfig, pageHeaders, requestHost } from '../../src/page-policy.js';
import { cspDirectives as directives } from '../../../../test-support/page-policy.js';
import { mintToken } from '../../../../test-support/tokens.js';

const derived = { publicIngestUrl: undefined, publicQueryUrl: undefined, pageToken: undefined };
const configured = { publicIngestUrl: 'https://ingest.example.com/', publicQueryUrl: 'https://query.example.com:8443/base', pageToken: undefined };

const configError = (env: Record<string, string>) => configProblems(loadConfig, env);

describe('the live page policy', () => {
  it('allows only its own files, no inline script or style, no framing, no base or form targets', () => {
    const d = directives(contentSecurityPolicy(configured, 'falcon.example.com'));
    expect(d.get('default-src')).to.deep.equal(["'none'"]);
    expect(d.get('script-src')).to.deep.equal(["'self'"]);
    expect(d.get('style-src')).to.deep.equal(["'self'"]);
    expect(d.get('img-src')).to.deep.equal(["'self'"]);
    expect(d.get('base-uri')).to.deep.equal(["'none'"]);
    expect(d.get('form-action')).to.deep.equal(["'none'"]);
    expect(d.get('frame-ancestors')).to.deep.equal(["'none'"]);
  });

  it('connects only to its own origin, its WebSocket, and the configured ingest and query origins', () => {
    const d = directives(contentSecurityPolicy(configured, 'falcon.example.com'));
    expect(d.get('connect-src')).to.deep.equal(["'self'", 'ws://falcon.example.com', 'wss://falcon.example.com', 'https://ingest.example.com', 'https://query.example.com:8443']);
  });

  it('names the derived ingest and query origins when none are configured', () => {
    const d = directives(contentSecurityPolicy(derived, '10.0.0.7:8080'));
    expect(d.get('connect-src')).to.deep.equal(["'self'", 'ws://10.0.0.7:8080', 'wss://10.0.0.7:8080', 'http://10.0.0.7:8081', 'http://10.0.0.7:8082']);
    expect(directives(contentSecurityPolicy(derived, '[::1]:8080')).get('connect-src')).to.include('http://[::1]:8081');
  });

  it('never lets a Host header add to the policy', () => {
    for (const host of ["evil.example; script-src 'unsafe-inline'", 'a b', 'x,y', '', 'host:port', 'é.example']) {
      expect(requestHost(host), host).to.equal(undefined);
      const policy = contentSecurityPolicy(derived, host);
      expect(policy, host).not.to.contain('unsafe-inline');
      expect(directives(policy).get('connect-src'), host).to.deep.equal(["'self'", 'http://127.0.0.1:8081', 'http://127.0.0.1:8082']);
    }
  });

  it('sends nosniff and no referrer with the policy', () => {
    const headers = pageHeaders(configured, 'falcon.example.com');
    expect(headers['x-content-type-options']).to.equal('nosniff');
    expect(headers['referrer-policy']).to.equal('no-referrer');
    expect(headers['content-security-policy']).to.contain("frame-ancestors 'none'");
  });
});

describe('the page config', () => {
  it('hands the page the configured token, and none when there is none', async () => {
    const token = await mintToken({ scope: 'messages:read messages:subscribe' });
    expect(pageConfig({ ...configured, pageToken: token }, 'falcon.example.com')).to.deep.equal({ ingestUrl: configured.publicIngestUrl, queryUrl: configured.publicQueryUrl, token });
    expect(pageConfig(derived, 'falcon.example.com:8080')).to.deep.equal({ ingestUrl: 'http://falcon.example.com:8081', queryUrl: 'http://falcon.example.com:8082' });
  });

  it('takes REALTIME_PAGE_TOKEN with read and subscribe scopes', async () => {
    const token = await mintToken({ scope: 'messages:read messages:subscribe' });
    expect(loadConfig({ REALTIME_PAGE_TOKEN: token }).pageToken).to.equal(token);
    expect(loadConfig({}).pageToken).to.equal(undefined);
  });

  it('refuses a page token that could post, since every visitor can read it', async () => {
    const problems = configError({ REALTIME_PAGE_TOKEN: await mintToken({ scope: 'messages:read messages:subscribe messages:write' }) });
    expect(problems).to.have.length(1);
    expect(problems[0]).to.match(/REALTIME_PAGE_TOKEN: .*messages:write/);
    expect(configError({ REALTIME_PAGE_TOKEN: 'not-a-jwt' })).to.deep.equal(['REALTIME_PAGE_TOKEN: must be a JWT']);
  });

  it('refuses public URLs that are not absolute http(s) URLs', () => {
    expect(configError({ REALTIME_PUBLIC_INGEST_URL: "https://x.example; script-src 'unsafe-inline'" })).to.have.length(1);
    expect(configError({ REALTIME_PUBLIC_QUERY_URL: '/api' })).to.have.length(1);
    expect(configError({ REALTIME_PUBLIC_QUERY_URL: 'http://[' })).to.deep.equal(['REALTIME_PUBLIC_QUERY_URL: must be an absolute http(s) URL']);
  });
});
