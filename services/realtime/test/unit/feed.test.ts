import { expect } from 'chai';
import { JetStreamApiError } from '@nats-io/jetstream';
import { createSilentLogger } from '@falcon/shared';
import { startFeed, type FeedSource, type OpenFeed } from '../../src/feed.js';

/** A source that yields the given seqs, then ends (as a consumer closed under the feed does). */
function endingSource(seqs: number[]): FeedSource & { closed: boolean } {
  const source = {
    closed: false,
    async *[Symbol.asyncIterator]() {
      for (const seq of seqs) yield { seq, string: () => `m${seq}` };
    },
    close: async () => {
      source.closed = true;
    },
  };
  return source;
}

/** A source that yields nothing until closed. */
function openSource(): FeedSource & { closed: boolean } {
  let wake: () => void = () => undefined;
  const source = {
    closed: false,
    async *[Symbol.asyncIterator]() {
      await new Promise<void>((resolve) => (wake = resolve));
    },
    close: async () => {
      source.closed = true;
      wake();
    },
  };
  return source;
}

describe('live feed', () => {
  const log = createSilentLogger();

  it('stops at once while it is re-opening a consumer, and closes one that opens late', async () => {
    const pushed: number[] = [];
    let late: (source: FeedSource) => void = () => undefined;
    const lateSource = openSource();
    const opens: number[] = [];
    const open: OpenFeed = (fromSeq) => {
      opens.push(fromSeq);
      // The first consumer ends after two messages; its replacement hangs (NATS is away).
      if (opens.length === 1) return Promise.resolve(endingSource([1, 2]));
      return new Promise((resolve) => (late = resolve));
    };
    const feed = await startFeed({ open, nextSeq: () => (pushed.at(-1) ?? 0) + 1, push: (seq) => pushed.push(seq), log });
    while (opens.length < 2) await new Promise((resolve) => setImmediate(resolve));
    const started = Date.now();
    await feed.stop();
    expect(Date.now() - started).to.be.lessThan(100);
    await feed.done;
    expect(pushed).to.deep.equal([1, 2]);
    expect(opens).to.deep.equal([1, 3]);
    late(lateSource);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lateSource.closed).to.equal(true);
  });

  it('stops at once while it waits to retry a failed reopen', async () => {
    let opens = 0;
    const open: OpenFeed = () => {
      opens += 1;
      return opens === 1 ? Promise.resolve(endingSource([])) : Promise.reject(new Error('no responders'));
    };
    const feed = await startFeed({ open, nextSeq: () => 1, push: () => undefined, log, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    while (opens < 2) await new Promise((resolve) => setImmediate(resolve));
    const started = Date.now();
    await feed.stop();
    expect(Date.now() - started).to.be.lessThan(100);
  });

  it('closes its open consumer on stop', async () => {
    const source = openSource();
    const feed = await startFeed({ open: () => Promise.resolve(source), nextSeq: () => 1, push: () => undefined, log });
    expect(feed.isRunning()).to.equal(true);
    await feed.stop();
    expect(source.closed).to.equal(true);
    expect(feed.isRunning()).to.equal(false);
  });

  it('replaces a failed consumer from the next seq, and fails for good when the stream is gone', async () => {
    const pushed: number[] = [];
    const froms: number[] = [];
    const open: OpenFeed = (fromSeq) => {
      froms.push(fromSeq);
      if (froms.length === 1) return Promise.resolve(endingSource([5, 6]));
      if (froms.length === 2) return Promise.reject(new Error('timeout'));
      return Promise.reject(new JetStreamApiError({ code: 404, err_code: 10059, description: 'stream not found' }));
    };
    const feed = await startFeed({ open, nextSeq: () => (pushed.at(-1) ?? 4) + 1, push: (seq) => pushed.push(seq), log, backoff: { initialMs: 1, maxMs: 1 } });
    const err = await feed.done.catch((e: unknown) => e);
    expect(err).to.be.instanceOf(JetStreamApiError);
    expect(froms).to.deep.equal([5, 7, 7]);
    expect(pushed).to.deep.equal([5, 6]);
    await feed.stop();
  });
});
