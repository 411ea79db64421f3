import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { DEFAULT_STREAM_OPTIONS, ensureMessagesStream, falconNames } from '@falcon/shared';
import { inParallel, postMessage } from '../../e2e/client.js';
import { startLocalStack, type LocalStack } from '../../e2e/target.js';
import { ROOT, waitFor } from '../../scripts/stack.js';
import { expectNoInlineCode, expectStrictPageHeaders } from '../../test-support/page-policy.js';
import { ALL_SCOPES, mintToken, TEST_SECRET } from '../../test-support/tokens.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-results', 'screenshots');

/** The seqs of the rows on the page, top to bottom. */
const rowSeqs = (page: Page) => page.$$eval('#messages tr', (rows) => rows.map((r) => Number((r as HTMLElement).dataset['seq'])));

const LAUNCH_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** What a page reported against its Content-Security-Policy, and its uncaught errors. */
interface PageWatch {
  errors: string[];
  /** Console messages about the policy ("Refused to ... because it violates ..."). */
  cspConsole: string[];
  /** `securitypolicyviolation` events: "directive blockedURI". */
  violations(): Promise<string[]>;
  /** Forgets what was recorded so far (after a test provoked violations on purpose). */
  clear(): Promise<void>;
}

declare global {
  interface Window {
    __cspViolations?: string[];
  }
}

/**
 * Records every policy violation from the first byte on: the listener is installed by the
 * browser before the page's own script (an init script runs outside the page's CSP).
 */
async function watchPage(page: Page): Promise<PageWatch> {
  const watch = { errors: [] as string[], cspConsole: [] as string[] };
  page.on('pageerror', (err) => watch.errors.push(err.message));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) watch.cspConsole.push(msg.text());
  });
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations!.push(`${e.effectiveDirective} ${e.blockedURI}`));
  });
  return {
    ...watch,
    violations: () => page.evaluate(() => window.__cspViolations ?? []),
    clear: async () => {
      watch.cspConsole.length = 0;
      await page.evaluate(() => window.__cspViolations?.splice(0));
    },
  };
}

/** Nothing on the page broke the policy or threw. */
async function expectClean(watch: PageWatch): Promise<void> {
  expect(await watch.violations(), 'securitypolicyviolation events').to.deep.equal([]);
  expect(watch.cspConsole, 'console messages about the CSP').to.deep.equal([]);
  expect(watch.errors, 'no uncaught errors on the page').to.deep.equal([]);
}

describe('the live page in a real browser', function () {
  this.timeout(180_000);
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;
  let watch: PageWatch;

  before(async () => {
    // Auth off here (the next describe has it on), whatever E2E_AUTH says.
    stack = await startLocalStack({ suiteAuth: false });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  beforeEach(async () => {
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch = await watchPage(page);
    await page.goto(`${stack.realtime[0]}/`);
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
  });
  // Every session below is a normal one: nothing on the page may break its own policy.
  afterEach(async () => {
    try {
      await expectClean(watch);
    } finally {
      await page.close();
    }
  });

  it('is served with a strict Content-Security-Policy, nosniff and no referrer, on the page and every file', async () => {
    for (const path of ['/', '/index.html', '/app.js', '/style.css', '/favicon.svg']) {
      const res = await fetch(`${stack.realtime[0]}${path}`);
      await res.arrayBuffer();
      expect(res.status, path).to.equal(200);
      const d = expectStrictPageHeaders(res.headers, path);
      const gateway = new URL(stack.realtime[0]!);
      // Ingest and query listen on other ports than the gateway: other origins, named one by one.
      expect(d.get('connect-src'), path).to.deep.equal(["'self'", `ws://${gateway.host}`, `wss://${gateway.host}`, new URL(stack.ingest).origin, new URL(stack.query).origin]);
    }
    expectNoInlineCode(await (await fetch(`${stack.realtime[0]}/`)).text());
  });

  it('enforces its policy: an injected inline script, a foreign image and a foreign connection are blocked and reported', async () => {
    const ran = await page.evaluate(async () => {
      const script = document.createElement('script');
      script.textContent = 'window.__injected = true';
      document.body.append(script);
      const img = document.createElement('img');
      img.src = 'http://127.0.0.1:9/pixel.png';
      document.body.append(img);
      const fetched = await fetch('http://127.0.0.1:9/steal').then(() => true, () => false);
      return { script: (window as unknown as { __injected?: boolean }).__injected === true, fetched };
    });
    expect(ran).to.deep.equal({ script: false, fetched: false });
    await waitFor('three violations reported', async () => (await watch.violations()).length >= 3, 5_000, 50);
    expect((await watch.violations()).sort()).to.deep.equal(['connect-src http://127.0.0.1:9/steal', 'img-src http://127.0.0.1:9/pixel.png', 'script-src-elem inline']);
    expect(watch.cspConsole.length, 'Chromium says so on the console too').to.be.at.least(1);
    await watch.clear();
  });

  it('shows messages posted over HTTP, newest first, with their seq', async () => {
    const posted = [];
    for (let i = 0; i < 5; i++) posted.push((await postMessage(stack.ingest, { text: `hello ${i}` })).body.seq);
    await page.waitForFunction((seq) => document.querySelector(`#messages tr[data-seq="${seq}"]`), posted[4]);
    const seqs = await rowSeqs(page);
    expect(seqs.slice(0, 5)).to.deep.equal([...posted].reverse());
    const first = page.locator(`#messages tr[data-seq="${posted[4]}"]`);
    expect(await first.locator('td.seq').textContent()).to.equal(String(posted[4]));
    expect(await first.locator('td.payload').textContent()).to.equal('{"text":"hello 4"}');
    expect(await first.locator('td.lat').textContent()).to.match(/^\d+ ms$/);
    expect(await page.locator('#conn-text').textContent()).to.equal('live');
  });

  it('on opening shows the most recent persisted messages, then continues live with no gap and no duplicate', async () => {
    const earlier: number[] = [];
    let lastId = '';
    for (let i = 0; i < 5; i++) {
      const { body } = await postMessage(stack.ingest, { opening: 'earlier', i });
      earlier.push(body.seq);
      lastId = body.id;
    }
    await waitFor('the earlier messages persisted', async () => (await fetch(`${stack.query}/api/messages/${lastId}`)).status === 200);
    // Messages keep arriving while the page opens: the hand-over from the query API to the
    // live stream must lose none and show none twice.
    let posting = true;
    const during: number[] = [];
    const poster = (async () => {
      while (posting) during.push((await postMessage(stack.ingest, { opening: 'during' })).body.seq);
    })();
    await page.reload();
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
    await page.waitForSelector(`#messages tr[data-seq="${earlier[4]}"]`);
    posting = false;
    await poster;
    const later = (await postMessage(stack.ingest, { opening: 'later' })).body.seq;
    await page.waitForSelector(`#messages tr[data-seq="${later}"]`, { timeout: 20_000 });
    const seqs = await rowSeqs(page);
    expect(seqs[0]).to.equal(later);
    expect(seqs, 'every seq once, newest first, none missing').to.deep.equal(Array.from({ length: seqs.length }, (_, i) => later - i));
    for (const seq of [...earlier, ...during]) expect(seqs).to.include(seq);
    // The earlier ones came from the query API, not the live stream: no delivery latency.
    expect(await page.locator(`#messages tr[data-seq="${earlier[0]}"] td.lat`).textContent()).to.equal('–');
  });

  it('after a resume answers recovered: false (the stream was recreated), reloads and shows every new message', async () => {
    // Its own stack: recreating the stream leaves Postgres with rows of the old one, which the
    // other tests must not see.
    const own = await startLocalStack({ suiteAuth: false });
    const ownPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const ownWatch = await watchPage(ownPage);
    try {
      await ownPage.goto(`${own.realtime[0]}/`);
      await ownPage.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
      let old = 0;
      for (let i = 0; i < 5; i++) old = (await postMessage(own.ingest, { stream: 'old', i })).body.seq;
      await ownPage.waitForSelector(`#messages tr[data-seq="${old}"]`);
      // Recreate the stream under the running services: the gateway restarts on it and its
      // seqs start again from 1, below what the page has seen.
      await own.stack.kill('realtime', 'SIGTERM');
      await own.stack.kill('persister', 'SIGTERM');
      await ownPage.waitForSelector('#conn[data-state="offline"]', { timeout: 10_000 });
      const nc = await connect({ servers: own.natsUrl.split(',') });
      try {
        const jsm = await jetstreamManager(nc);
        const names = falconNames(own.stack.namespace);
        await jsm.streams.delete(names.stream);
        await ensureMessagesStream(jsm, names, DEFAULT_STREAM_OPTIONS);
      } finally {
        await nc.close();
      }
      await own.stack.start('persister');
      await own.stack.start('realtime');
      await ownPage.waitForSelector('#conn[data-state="live"]', { timeout: 30_000 });
      const fresh: number[] = [];
      for (let i = 0; i < 3; i++) fresh.push((await postMessage(own.ingest, { stream: 'new', i })).body.seq);
      expect(fresh[2]!, 'the new stream numbers from the start again').to.be.below(old);
      await ownPage.waitForSelector(`#messages tr[data-seq="${fresh[2]}"]`, { timeout: 20_000 });
      const payloads = await ownPage.$$eval('#messages tr td.payload', (cells) => cells.map((c) => c.textContent));
      expect(payloads.slice(0, 3)).to.deep.equal([2, 1, 0].map((i) => JSON.stringify({ stream: 'new', i })));
      expect((await rowSeqs(ownPage)).slice(0, 3)).to.deep.equal([...fresh].reverse());
      expect(await ownPage.locator('#notice').isVisible()).to.equal(true);
      await expectClean(ownWatch);
    } finally {
      await ownPage.close();
      await own.stop();
    }
  });

  it('reconnects by itself after the gateway restarts and shows every message posted meanwhile, once', async () => {
    const before = (await postMessage(stack.ingest, { phase: 'before' })).body.seq;
    await page.waitForSelector(`#messages tr[data-seq="${before}"]`);
    await stack.stack.kill('realtime', 'SIGTERM');
    await page.waitForSelector('#conn[data-state="offline"]', { timeout: 10_000 });
    const away = [];
    for (let i = 0; i < 10; i++) away.push((await postMessage(stack.ingest, { phase: 'away', i })).body.seq);
    await stack.stack.start('realtime');
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 30_000 });
    const after = (await postMessage(stack.ingest, { phase: 'after' })).body.seq;
    await page.waitForSelector(`#messages tr[data-seq="${after}"]`, { timeout: 20_000 });
    const seqs = await rowSeqs(page);
    const expected = [after, ...[...away].reverse(), before];
    expect(seqs.slice(0, expected.length)).to.deep.equal(expected);
    expect(new Set(seqs).size, 'no seq twice').to.equal(seqs.length);
    expect(await page.locator('#notice').isHidden()).to.equal(true);
  });

  it('shows a payload full of HTML and script as text and runs none of it', async () => {
    const hostile = {
      img: '<img src=x onerror="window.__pwned=1">',
      script: '<script>window.__pwned=2</script>',
      closing: '</td></tr><tr><td>injected</td></tr>',
    };
    const { body } = await postMessage(stack.ingest, hostile);
    const row = page.locator(`#messages tr[data-seq="${body.seq}"]`);
    await row.waitFor();
    expect(await row.locator('td.payload').textContent()).to.equal(JSON.stringify(hostile));
    expect(await row.locator('img, script').count()).to.equal(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).to.equal(undefined);
  });

  it('posts a message from its send form and then shows it', async () => {
    await page.fill('#payload', '{"from":"the form","n":42}');
    await page.click('#send');
    await page.waitForFunction(() => /Accepted as #\d+/.test(document.querySelector('#send-result')?.textContent ?? ''));
    const seq = Number(/#(\d+)/.exec((await page.locator('#send-result').textContent()) ?? '')![1]);
    const row = page.locator(`#messages tr[data-seq="${seq}"]`);
    await row.waitFor();
    expect(await row.locator('td.payload').textContent()).to.equal('{"from":"the form","n":42}');
    await page.fill('#payload', '{not json');
    await page.click('#send');
    expect(await page.locator('#send-result').textContent()).to.match(/Not valid JSON/);
  });

  it('stays responsive with 10,000 messages arriving and keeps a bounded number of rows', async () => {
    const accepted = await inParallel(10_000, 64, async (i) => (await postMessage(stack.ingest, { burst: i })).body.seq);
    const last = Math.max(...accepted);
    await page.waitForSelector(`#messages tr[data-seq="${last}"]`, { timeout: 60_000 });
    const rows = await page.locator('#messages tr').count();
    expect(rows).to.be.at.most(500);
    expect(await page.locator('#stat-last-seq').textContent()).to.equal(String(last));
    // Still interactive: the form answers and a new message shows up on top.
    await page.fill('#payload', '{"after":"burst"}');
    await page.click('#send');
    await page.waitForFunction(() => /Accepted as #\d+/.test(document.querySelector('#send-result')?.textContent ?? ''));
    await waitFor('the pipeline status to catch up', async () => (await page.locator('#pipe-backlog').textContent()) === '0', 60_000, 250);
  });

  it('shows live pipeline status and is worth looking at (screenshot)', async () => {
    for (let i = 0; i < 8; i++) await postMessage(stack.ingest, { text: `message ${i}`, user: ['ada', 'grace', 'linus'][i % 3], tags: ['demo'] });
    await waitFor('pipeline status', async () => (await page.locator('#pipe-received').textContent()) !== '–', 10_000);
    // The first status poll can predate this page's own WebSocket; the next ones count it.
    await waitFor('this page among the live clients', async () => Number((await page.locator('#pipe-clients').textContent())?.replace(/\D/g, '')) >= 1, 10_000, 100);
    await waitFor('persisted count to catch up', async () => (await page.locator('#pipe-persisted').textContent()) === (await page.locator('#pipe-received').textContent()), 20_000, 200);
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'live-page.png') });
  });
});

describe('the live page with authentication on', function () {
  this.timeout(180_000);
  let stack: LocalStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let watch: PageWatch;
  let writer: Record<string, string>;
  let pageToken: string;
  const READ_SUBSCRIBE = 'messages:read messages:subscribe';

  before(async () => {
    pageToken = await mintToken({ sub: 'live-page', scope: READ_SUBSCRIBE });
    writer = { authorization: `Bearer ${await mintToken({ sub: 'page-test-writer', scope: ALL_SCOPES })}` };
    stack = await startLocalStack({ suiteAuth: false, env: { AUTH_JWT_SECRET: TEST_SECRET, REALTIME_PAGE_TOKEN: pageToken } });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  /** A page in a fresh context (its own storage) at the given gateway. */
  async function open(gateway: string): Promise<void> {
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    watch = await watchPage(page);
    await page.goto(`${gateway}/`);
  }
  afterEach(async () => {
    try {
      await expectClean(watch);
    } finally {
      await context.close();
    }
  });

  it('shows persisted and live messages with the read/subscribe token the gateway hands it', async () => {
    expect((await fetch(`${stack.query}/api/messages?limit=1`)).status, 'query refuses without a token').to.equal(401);
    expect(await (await fetch(`${stack.realtime[0]}/config.json`)).json()).to.have.property('token', pageToken);
    let persisted: { seq: number; id: string } | undefined;
    for (let i = 0; i < 3; i++) persisted = (await postMessage(stack.ingest, { auth: 'persisted', i }, writer)).body;
    await waitFor('the earlier messages persisted', async () => (await fetch(`${stack.query}/api/messages/${persisted!.id}`, { headers: writer })).status === 200);
    await open(stack.realtime[0]!);
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
    await page.waitForSelector(`#messages tr[data-seq="${persisted!.seq}"]`);
    expect(await page.locator(`#messages tr[data-seq="${persisted!.seq}"] td.lat`).textContent(), 'from the query API').to.equal('–');
    const live = (await postMessage(stack.ingest, { auth: 'live', html: '<img src=x onerror="window.__pwned=1">' }, writer)).body;
    const row = page.locator(`#messages tr[data-seq="${live.seq}"]`);
    await row.waitFor({ timeout: 20_000 });
    expect(await row.locator('td.payload').textContent()).to.equal(JSON.stringify({ auth: 'live', html: '<img src=x onerror="window.__pwned=1">' }));
    expect(await row.locator('img').count()).to.equal(0);
    expect(await page.locator('#token-section').isHidden(), 'no token asked for').to.equal(true);
  });

  it('posts only with a write token typed into the page, and keeps that token in the tab alone', async () => {
    await open(stack.realtime[0]!);
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
    // The page's own token may read and subscribe, not post.
    await page.fill('#payload', '{"from":"the page token"}');
    await page.click('#send');
    await page.waitForFunction(() => /^403/.test(document.querySelector('#send-result')?.textContent ?? ''));
    await page.waitForSelector('#token-section:not([hidden])');
    await page.fill('#token', writer['authorization']!.replace('Bearer ', ''));
    await page.click('#token-use');
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
    await page.fill('#payload', '{"from":"a write token"}');
    await page.click('#send');
    await page.waitForFunction(() => /Accepted as #\d+/.test(document.querySelector('#send-result')?.textContent ?? ''));
    const seq = Number(/#(\d+)/.exec((await page.locator('#send-result').textContent()) ?? '')![1]);
    await page.locator(`#messages tr[data-seq="${seq}"]`).waitFor({ timeout: 20_000 });
    const stored = await page.evaluate(() => ({ session: sessionStorage.length, local: localStorage.length, cookie: document.cookie }));
    expect(stored).to.deep.equal({ session: 1, local: 0, cookie: '' });
    expect(await context.cookies()).to.deep.equal([]);
    // A new tab (a new session) starts without it.
    const other = await context.newPage();
    await other.goto(`${stack.realtime[0]}/`);
    expect(await other.evaluate(() => sessionStorage.length)).to.equal(0);
    await other.close();
  });

  it('without a configured token asks for one, and goes live once given a read/subscribe token', async () => {
    const bare = await stack.stack.start('realtime', 2, { REALTIME_PAGE_TOKEN: '' });
    try {
      expect(await (await fetch(`${bare.url}/config.json`)).json()).not.to.have.property('token');
      await open(bare.url);
      await page.waitForSelector('#token-section:not([hidden])', { timeout: 20_000 });
      expect(await page.locator('#conn-text').textContent()).to.equal('needs an access token');
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, 'live-page-token.png') });
      await page.fill('#token', 'not a token');
      await page.click('#token-use');
      expect(await page.locator('#token-reason').textContent()).to.match(/not a bearer token/);
      expect(await page.locator('#token-section').isVisible()).to.equal(true);
      await page.fill('#token', await mintToken({ sub: 'a-reader', scope: READ_SUBSCRIBE }));
      await page.click('#token-use');
      await page.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
      const { seq } = (await postMessage(stack.ingest, { auth: 'typed token' }, writer)).body;
      await page.locator(`#messages tr[data-seq="${seq}"]`).waitFor({ timeout: 20_000 });
      expect(await page.locator('#token-section').isHidden()).to.equal(true);
    } finally {
      await stack.stack.kill('realtime-2');
    }
  });
});
