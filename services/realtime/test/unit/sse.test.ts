import { expect } from 'chai';
import type uWS from 'uWebSockets.js';
import { atExpiry } from '../../src/access.js';
import { CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER } from '../../src/fan-out.js';
import { createSseEncoder, startSseStream, welcomeEvent } from '../../src/sse.js';

/**
 * An HTTP response as uWS' behaves for a streamed body: write() answers false once the socket
 * is full (what did not fit stays in uWS' own buffer), onWritable fires when it has room, and
 * any use after the end or an abort is an error (uWS would abort the process).
 */
class FakeResponse {
  written: string[] = [];
  full = false;
  state: 'open' | 'ended' | 'closed' = 'open';
  writable: (() => boolean) | undefined;
  aborted: (() => void) | undefined;
  corked = 0;

  private use(): void {
    if (this.state !== 'open') throw new Error(`response used after it was ${this.state}`);
  }
  cork(cb: () => void) {
    this.use();
    this.corked += 1;
    cb();
    return this;
  }
  writeStatus() {
    this.use();
    return this;
  }
  writeHeader() {
    this.use();
    return this;
  }
  write(text: string): boolean {
    this.use();
    this.written.push(text);
    return !this.full;
  }
  end() {
    this.use();
    this.state = 'ended';
    return this;
  }
  close() {
    this.use();
    this.state = 'closed';
    this.aborted?.();
    return this;
  }
  onWritable(handler: () => boolean) {
    this.writable = handler;
    return this;
  }
  onAborted(handler: () => void) {
    this.aborted = handler;
    return this;
  }
  /** The client went away. */
  abort(): void {
    this.state = 'closed';
    this.aborted?.();
  }
  /** The socket drained: uWS calls the writable handler. */
  drain(): void {
    this.full = false;
    this.writable?.();
  }
  events(): string {
    return this.written.join('');
  }
}

function open(since?: number) {
  const res = new FakeResponse();
  const hooks = { drained: 0, ended: 0 };
  const stream = startSseStream(res as unknown as uWS.HttpResponse, createSseEncoder(), since, {
    drained: () => (hooks.drained += 1),
    ended: () => (hooks.ended += 1),
  });
  return { res, hooks, stream, sink: stream.sink };
}

const frame = (seq: number) => `{"type":"message","seq":${seq}}`;

describe('SSE stream sink', () => {
  it('writes each event as id, event and data lines, and line breaks in a frame as more data lines', () => {
    const encode = createSseEncoder();
    expect(encode(frame(7), 7)).to.equal(`id: 7\nevent: message\ndata: ${frame(7)}\n\n`);
    expect(encode('{\r\n"a":\r1,\n"b":2}', 8)).to.equal('id: 8\nevent: message\ndata: {\ndata: "a":\ndata: 1,\ndata: "b":2}\n\n');
  });

  it('gives the welcome the id the stream continues after: since while resuming, else lastSeq', () => {
    const welcome = (lastSeq: number, recovered: boolean) => JSON.stringify({ type: 'welcome', lastSeq, recovered });
    expect(welcomeEvent(welcome(20, true), 12)).to.match(/^id: 12\nevent: welcome\ndata: /);
    expect(welcomeEvent(welcome(20, false), 12)).to.match(/^id: 20\n/);
    expect(welcomeEvent(welcome(20, false), undefined)).to.match(/^id: 20\n/);
  });

  it('hands events to uWS while it takes them, keeps and counts them once it reports backpressure, and sends them in order when writable', () => {
    const { res, hooks, sink } = open();
    sink.send(frame(1), 1);
    expect(res.events()).to.contain('id: 1\n');
    expect(sink.bufferedAmount()).to.equal(0);
    res.full = true;
    sink.send(frame(2), 2); // uWS takes it into its own buffer and reports backpressure
    sink.send(frame(3), 3);
    sink.send(frame(4), 4);
    expect(res.events()).not.to.contain('id: 3\n');
    const waiting = sink.bufferedAmount();
    expect(waiting).to.be.greaterThan(2 * frame(3).length);
    res.drain();
    expect(hooks.drained).to.equal(1);
    expect(sink.bufferedAmount()).to.equal(0);
    expect([...res.events().matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))).to.deep.equal([1, 2, 3, 4]);
    sink.send(frame(5), 5);
    expect(res.events()).to.match(/id: 5\n[^]*$/);
  });

  it('skips the heartbeat while events wait, and sends a comment otherwise', () => {
    const { res, stream, sink } = open();
    stream.heartbeat();
    expect(res.written.at(-1)).to.equal(':\n\n');
    res.full = true;
    sink.send(frame(1), 1);
    const count = res.written.length;
    stream.heartbeat();
    expect(res.written.length).to.equal(count);
  });

  it('cuts a slow client off at once and ends the stream properly otherwise; never touches the response again', () => {
    const slow = open();
    slow.sink.close(CLOSE_TRY_AGAIN_LATER, 'too slow');
    expect(slow.res.state).to.equal('closed');
    expect(slow.hooks.ended).to.equal(1);
    const leaving = open();
    leaving.sink.close(CLOSE_GOING_AWAY, 'shutting down');
    expect(leaving.res.state).to.equal('ended');
    expect(leaving.hooks.ended).to.equal(1);
    for (const { sink, stream, res } of [slow, leaving]) {
      sink.send(frame(9), 9);
      stream.heartbeat();
      sink.close(CLOSE_GOING_AWAY, 'again');
      res.writable?.();
    }
  });

  it('after the client aborts: reports the end once and ignores everything sent to it', () => {
    const { res, hooks, sink, stream } = open();
    res.full = true;
    sink.send(frame(1), 1);
    sink.send(frame(2), 2);
    res.abort();
    expect(hooks.ended).to.equal(1);
    expect(sink.bufferedAmount()).to.equal(0);
    sink.send(frame(3), 3);
    stream.heartbeat();
    sink.close(CLOSE_TRY_AGAIN_LATER, 'slow');
    expect(hooks.ended).to.equal(1);
  });
});

describe('atExpiry', () => {
  it('fires from a timer, never during set-up, even for a token already past its exp', async () => {
    let fired = 0;
    const done = new Promise<void>((resolve) =>
      atExpiry(new Date(Date.now() - 1000), () => {
        fired += 1;
        resolve();
      }),
    );
    expect(fired).to.equal(0);
    await done;
    expect(fired).to.equal(1);
  });

  it('fires at the expiry, not before, and not at all once cancelled', async () => {
    const start = Date.now();
    let cancelledFired = false;
    const cancel = atExpiry(new Date(start + 10), () => (cancelledFired = true));
    cancel();
    // Fires after the cancelled one would have.
    const at = await new Promise<number>((resolve) => atExpiry(new Date(start + 30), () => resolve(Date.now())));
    expect(at - start).to.be.at.least(30);
    expect(cancelledFired).to.equal(false);
  });

  it('never fires without an expiry', () => {
    expect(atExpiry(undefined, () => expect.fail('fired'))).to.be.a('function');
  });
});
