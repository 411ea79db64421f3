import { expect } from 'chai';
import { createMetricsRegistry, createSilentLogger, encodeEnvelope, messageFrame } from '@falcon/shared';
import { createSubscriptions, type Replay } from '../../src/catch-up.js';
import { CLOSE_TRY_AGAIN_LATER, createFanOut, type FanOut, type Subscriber, type SubscriberSink } from '../../src/fan-out.js';
import { FrameHistory } from '../../src/history.js';
import { createRealtimeMetrics } from '../../src/metrics.js';

const envelope = (i: number, pad = '') => encodeEnvelope('0193f3c6-5a7e-7cc2-9a4b-2f3d1c0e9b11', '2026-11-27T10:15:30.123Z', `{"i":${i},"pad":"${pad}"}`);

/**
 * A connection with a send buffer like uWS': frames queue up in `buffered` and leave it only
 * when the test "reads", which also fires the transport's drain event.
 */
class FakeConnection implements SubscriberSink {
  buffered = 0;
  maxBuffered = 0;
  frames: string[] = [];
  private readonly messageSeqs: number[] = [];
  closeCode: number | undefined;
  subscriber!: Subscriber;

  send(frame: string, seq?: number): void {
    this.frames.push(frame);
    const parsed = JSON.parse(frame) as { type: string; seq?: number };
    expect(seq, 'the seq given with a frame').to.equal(parsed.seq);
    if (parsed.type === 'message') this.messageSeqs.push(parsed.seq!);
    this.buffered += frame.length;
    this.maxBuffered = Math.max(this.maxBuffered, this.buffered);
  }

  bufferedAmount(): number {
    return this.buffered;
  }

  close(code: number): void {
    this.closeCode = code;
  }

  /** The reader takes everything queued. */
  read(): void {
    this.buffered = 0;
    this.subscriber.drained();
  }

  seqs(): number[] {
    return this.messageSeqs;
  }
}

/**
 * Plays a fast reader while the catch-up runs: each turn of the event loop one more message
 * arrives and the reader takes everything queued. Resolves with the next seq to push once the
 * reader is live.
 */
async function readUntilLive(opened: Promise<void>, reader: FakeConnection, fanOut: FanOut, next: number): Promise<number> {
  let live = false;
  void opened.then(() => (live = true));
  while (!live) {
    await new Promise((resolve) => setImmediate(resolve));
    fanOut.push(next, envelope(next));
    next += 1;
    reader.read();
  }
  return next;
}

function setup(options: { history?: number; maxBackpressure?: number; replay?: Replay; stallMs?: number } = {}) {
  const metrics = createRealtimeMetrics(createMetricsRegistry('test', '0'));
  const maxBackpressure = options.maxBackpressure ?? 64 * 1024;
  const fanOut = createFanOut({ log: createSilentLogger(), metrics, history: new FrameHistory(options.history ?? 20_000), startSeq: 0, maxBackpressure, sweepIntervalMs: 60_000 });
  const subscriptions = createSubscriptions({
    log: createSilentLogger(),
    fanOut,
    replay: options.replay ?? (() => Promise.reject(new Error('no stream in this test'))),
    bounds: { cachedFirstSeq: () => 1, freshFirstSeq: () => Promise.resolve(1) },
    metrics,
    resumeBufferBytes: maxBackpressure / 2,
    stallMs: options.stallMs ?? 5_000,
  });
  const connect = (fan: FanOut) => {
    const connection = new FakeConnection();
    connection.subscriber = fan.add(connection);
    return connection;
  };
  return { fanOut, subscriptions, metrics, maxBackpressure, connect: () => connect(fanOut) };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('paced catch-up', () => {
  it('sends a 10,000-frame resume from memory in paced steps, complete, then goes live with no gap or duplicate', async () => {
    const { fanOut, subscriptions, connect, maxBackpressure } = setup();
    const pad = 'x'.repeat(1100);
    for (let seq = 1; seq <= 10_000; seq++) fanOut.push(seq, envelope(seq, pad));
    const reader = connect();
    const opened = subscriptions.open(reader.subscriber, 0);
    let next = await readUntilLive(opened, reader, fanOut, 10_001);
    // Live frames go through the transport's broadcast; this fake has none, so they arrive
    // through send() once the reader is live.
    for (let i = 0; i < 5; i++, next++) fanOut.push(next, envelope(next));
    expect(reader.seqs()).to.deep.equal(range(1, next - 1));
    expect(reader.closeCode).to.equal(undefined);
    // Never more than half the slow limit plus one frame queued.
    expect(reader.maxBuffered).to.be.lessThan(maxBackpressure / 2 + 1300);
  });

  it('closes a reader that stops during the catch-up with 1013 and counts it as slow', async () => {
    const { fanOut, subscriptions, connect, metrics } = setup({ stallMs: 30 });
    for (let seq = 1; seq <= 1_000; seq++) fanOut.push(seq, envelope(seq, 'y'.repeat(500)));
    const reader = connect();
    await subscriptions.open(reader.subscriber, 0);
    expect(reader.closeCode).to.equal(CLOSE_TRY_AGAIN_LATER);
    expect(reader.subscriber.isClosed()).to.equal(true);
    expect((await metrics.slowDisconnects.get()).values[0]?.value).to.equal(1);
    expect(fanOut.size()).to.equal(0);
  });

  it('continues from the stream when memory no longer holds what the reader needs, and back to memory for the rest', async () => {
    const replayed: [number, number][] = [];
    const replay: Replay = async (fromSeq, toSeq, deliver) => {
      replayed.push([fromSeq, toSeq]);
      for (let seq = fromSeq; seq <= toSeq; seq++) if (!(await deliver(seq, messageFrame(seq, envelope(seq))))) return seq - 1;
      return toSeq;
    };
    const { fanOut, subscriptions, connect } = setup({ history: 100, replay });
    for (let seq = 1; seq <= 500; seq++) fanOut.push(seq, envelope(seq));
    const reader = connect();
    const opened = subscriptions.open(reader.subscriber, 10);
    const next = await readUntilLive(opened, reader, fanOut, 501);
    fanOut.push(next, envelope(next));
    expect(reader.seqs()).to.deep.equal(range(11, next));
    expect(replayed[0]).to.deep.equal([11, 500]);
  });

  it('closes a live reader past the backlog limit with 1013 before the next frame could pass twice the limit', () => {
    const { fanOut, subscriptions, connect, metrics, maxBackpressure } = setup();
    const reader = connect();
    void subscriptions.open(reader.subscriber, undefined);
    const pad = 'z'.repeat(4000);
    for (let seq = 1; !reader.closeCode && seq < 1_000; seq++) fanOut.push(seq, envelope(seq, pad));
    expect(reader.closeCode).to.equal(CLOSE_TRY_AGAIN_LATER);
    expect(reader.maxBuffered).to.be.at.most(2 * maxBackpressure);
    return metrics.slowDisconnects.get().then((m) => expect(m.values[0]?.value).to.equal(1));
  });
});
