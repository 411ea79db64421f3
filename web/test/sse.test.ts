/**
 * A real browser's EventSource on the gateway's /sse: the events it receives, and its own
 * reconnection with Last-Event-ID when the gateway restarts.
 */
import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
import { postMessage } from '../../e2e/client.js';
import { sseUrl, startLocalStack, type LocalStack } from '../../e2e/target.js';
import { waitFor } from '../../scripts/stack.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

interface Received {
  type: string;
  lastEventId: string;
  data: { type: string; seq?: number; lastSeq?: number; recovered?: boolean; payload?: unknown };
}

/** What the page's EventSource has received so far, and how often it opened. */
const received = (page: Page) => page.evaluate(() => (window as unknown as { received: Received[] }).received);
const opens = (page: Page) => page.evaluate(() => (window as unknown as { opens: number }).opens);
const messageSeqs = async (page: Page) => (await received(page)).filter((r) => r.type === 'message').map((r) => r.data.seq!);

describe('EventSource in a real browser', function () {
  this.timeout(180_000);
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;

  before(async () => {
    // Ingest to post and the gateway to watch; nothing here reads from Postgres.
    stack = await startLocalStack({ replicas: { persister: 0, query: 0, realtime: 1 } });
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
    page = await browser.newPage();
    // Any page of the gateway's origin: the stream is same-origin, as the live page's would be.
    await page.goto(`${stack.realtime[0]}/healthz`);
    await page.evaluate((url) => {
      const w = window as unknown as { received: Received[]; opens: number; source: EventSource };
      w.received = [];
      w.opens = 0;
      w.source = new EventSource(url);
      w.source.addEventListener('open', () => (w.opens += 1));
      for (const type of ['welcome', 'message']) {
        w.source.addEventListener(type, (e) => {
          const event = e as MessageEvent<string>;
          w.received.push({ type, lastEventId: event.lastEventId, data: JSON.parse(event.data) as Received['data'] });
        });
      }
    }, sseUrl(stack.realtime[0]!));
    await waitFor('the welcome in the browser', async () => (await received(page)).length > 0, 20_000);
  });
  afterEach(async () => {
    await page.close();
  });

  it('receives the welcome first, then every message with its seq as the event id', async () => {
    const [welcome] = await received(page);
    expect(welcome!.type).to.equal('welcome');
    expect(welcome!.data).to.include({ type: 'welcome', recovered: false });
    const posted = [];
    for (let i = 0; i < 3; i++) posted.push((await postMessage(stack.ingest, { browser: i, text: 'é😀 <b>not html</b>' })).body);
    await waitFor('the messages in the browser', async () => (await messageSeqs(page)).length === 3, 20_000);
    const messages = (await received(page)).slice(1);
    expect(messages.map((m) => m.lastEventId)).to.deep.equal(posted.map((p) => String(p.seq)));
    expect(messages.map((m) => m.data.payload)).to.deep.equal([0, 1, 2].map((i) => ({ browser: i, text: 'é😀 <b>not html</b>' })));
  });

  it('reconnects by itself with Last-Event-ID after the gateway restarts: no gap, no duplicate', async () => {
    const first = (await postMessage(stack.ingest, { phase: 'before' })).body.seq;
    await waitFor('the first message', async () => (await messageSeqs(page)).includes(first), 20_000);
    // SIGTERM ends the stream; the browser retries while the gateway is down and after.
    await stack.stack.kill('realtime', 'SIGTERM');
    const missed: number[] = [];
    for (let i = 0; i < 3; i++) missed.push((await postMessage(stack.ingest, { phase: 'down', i })).body.seq);
    await stack.stack.start('realtime');
    await waitFor('the missed messages in the browser', async () => (await messageSeqs(page)).includes(missed[2]!), 60_000);
    const live = (await postMessage(stack.ingest, { phase: 'after' })).body.seq;
    await waitFor('a live message after the resume', async () => (await messageSeqs(page)).includes(live), 20_000);
    expect(await messageSeqs(page)).to.deep.equal([first, ...missed, live]);
    expect(await opens(page)).to.be.at.least(2);
    const welcomes = (await received(page)).filter((r) => r.type === 'welcome');
    expect(welcomes.at(-1)!.data).to.include({ recovered: true });
    expect(await page.evaluate(() => (window as unknown as { source: EventSource }).source.readyState)).to.equal(1);
  });
});
