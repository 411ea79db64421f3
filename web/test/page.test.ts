import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { chromium, type Browser, type Page } from 'playwright-core';
import { DEFAULT_STREAM_OPTIONS, ensureMessagesStream, falconNames } from '@falcon/shared';
import { inParallel, postMessage } from '../../e2e/client.js';
import { startLocalStack, type LocalStack } from '../../e2e/target.js';
import { ROOT, waitFor } from '../../scripts/stack.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-results', 'screenshots');

/** The seqs of the rows on the page, top to bottom. */
const rowSeqs = (page: Page) => page.$$eval('#messages tr', (rows) => rows.map((r) => Number((r as HTMLElement).dataset['seq'])));

describe('the live page in a real browser', function () {
  this.timeout(180_000);
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[];

  before(async () => {
    stack = await startLocalStack();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  beforeEach(async () => {
    pageErrors = [];
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${stack.realtime[0]}/`);
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
  });
  afterEach(async () => {
    await page.close();
    expect(pageErrors, 'no uncaught errors on the page').to.deep.equal([]);
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
    const own = await startLocalStack();
    const ownPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    ownPage.on('pageerror', (err) => pageErrors.push(err.message));
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
