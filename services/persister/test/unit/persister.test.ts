import type { JsMsg } from '@nats-io/jetstream';
import { expect } from 'chai';
import { Backoff, Counter, createSilentLogger, Histogram, Registry } from '@falcon/shared';
import type { BatchOutcome, Delivery } from '../../src/batch.js';
import { DATABASE_BACKOFF, startPersister, type MessageSource, type PersisterDeps } from '../../src/persister.js';

/** What a test can see of one fake stream message. */
interface FakeMsg {
  seq: number;
  acked: boolean;
  naked: boolean;
}

/** A consumer's message iterator fed by the test; counts what the persister has taken from it. */
class FakeSource implements MessageSource {
  readonly msgs: FakeMsg[] = [];
  taken = 0;
  private queue: JsMsg[] = [];
  private waiting: ((r: IteratorResult<JsMsg>) => void) | undefined;
  private closed = false;

  push(...seqs: number[]): void {
    for (const seq of seqs) {
      const msg: FakeMsg = { seq, acked: false, naked: false };
      this.msgs.push(msg);
      const jsMsg = {
        seq,
        info: { deliveryCount: 1 },
        string: () => `{"seq":${seq}}`,
        ack: () => void (msg.acked = true),
        nak: () => void (msg.naked = true),
      } as unknown as JsMsg;
      if (this.waiting) {
        const resolve = this.waiting;
        this.waiting = undefined;
        this.taken += 1;
        resolve({ value: jsMsg, done: false });
      } else {
        this.queue.push(jsMsg);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.waiting?.({ value: undefined, done: true });
    this.waiting = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<JsMsg> {
    return {
      next: () => {
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        const next = this.queue.shift();
        if (next) {
          this.taken += 1;
          return Promise.resolve({ value: next, done: false });
        }
        return new Promise((resolve) => (this.waiting = resolve));
      },
    };
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A batch handler that records every batch and answers as the test says (acking by default). */
function fakeHandler(answer: (batch: Delivery[]) => Promise<Partial<BatchOutcome> | void> = async () => undefined) {
  const batches: number[][] = [];
  const handle = async (batch: Delivery[]): Promise<BatchOutcome> => {
    batches.push(batch.map((d) => d.seq));
    const outcome = { stored: 0, duplicates: 0, deadLettered: 0, retried: 0, databaseDown: false, ...(await answer(batch)) };
    for (const d of batch) {
      if (outcome.databaseDown) d.nak(1000);
      else d.ack();
    }
    if (!outcome.databaseDown) outcome.stored = batch.length;
    return outcome;
  };
  return { batches, handle };
}

function metrics(): PersisterDeps['metrics'] {
  const registers = [new Registry()];
  return {
    messages: new Counter({ name: 'm', help: 'm', labelNames: ['outcome'] as const, registers }),
    batchSeconds: new Histogram({ name: 's', help: 's', registers }),
    batchSize: new Histogram({ name: 'z', help: 'z', registers }),
  };
}

function start(messages: MessageSource, handle: PersisterDeps['handle'], options: Partial<PersisterDeps> = {}) {
  return startPersister({ messages, handle, batchSize: 10, concurrency: 1, log: createSilentLogger(), metrics: metrics(), ...options });
}

/** Polls `check` (no fixed sleep) until it holds, failing after a deadline. */
async function until(check: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('persister loop (fake consumer and handler)', () => {
  it('writes full batches at once and a trickle without waiting for a batch to fill', async () => {
    const source = new FakeSource();
    const { batches, handle } = fakeHandler();
    const persister = start(source, handle, { batchSize: 3 });
    source.push(1, 2, 3, 4, 5, 6, 7);
    await until(() => source.msgs.every((m) => m.acked), 'every message acked');
    expect(batches.flat()).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
    for (const batch of batches) expect(batch.length).to.be.within(1, 3);
    expect(batches[0]).to.deep.equal([1, 2, 3]);
    // Light traffic: one message alone is written as soon as nothing else is waiting.
    source.push(8);
    await until(() => source.msgs.at(-1)!.acked, 'the lone message acked');
    expect(batches.at(-1)).to.deep.equal([8]);
    await persister.stop();
  });

  it('stops taking messages while every writer is busy and a full batch is waiting', async () => {
    const source = new FakeSource();
    const release = deferred();
    const { batches, handle } = fakeHandler(() => release.promise);
    const persister = start(source, handle, { batchSize: 2, concurrency: 2 });
    source.push(...Array.from({ length: 20 }, (_, i) => i + 1));
    await until(() => batches.length === 2, 'both writers busy');
    // Give the loop every chance to take more than it should.
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
    // Two batches in flight and one full batch waiting: nothing more is taken from the consumer.
    expect(source.taken).to.equal(2 * 2 + 2);
    release.resolve();
    await until(() => source.msgs.every((m) => m.acked), 'every message acked');
    expect(batches.flat().sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
    await persister.stop();
  });

  it('on stop, takes nothing new but finishes and acks every message already taken', async () => {
    const source = new FakeSource();
    const release = deferred();
    const { handle } = fakeHandler(() => release.promise);
    const persister = start(source, handle, { batchSize: 2 });
    source.push(1, 2, 3, 4);
    await until(() => source.taken === 4, 'four messages taken');
    let stopped = false;
    const stopping = persister.stop().then(() => (stopped = true));
    source.push(5);
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(stopped, 'stop waits for the batch in flight').to.equal(false);
    release.resolve();
    await stopping;
    expect(source.msgs.map((m) => m.acked)).to.deep.equal([true, true, true, true, false]);
    expect(source.taken).to.equal(4);
    await persister.done;
  });

  it('backs off after each failed batch, 250 ms doubling, and starts again from zero after a success', async () => {
    const source = new FakeSource();
    const sleeps: number[] = [];
    const down = [true, true, true, true, false, true];
    const { batches, handle } = fakeHandler(async () => ({ databaseDown: down[batches.length - 1] }));
    const health: boolean[] = [];
    const persister = start(source, handle, { onDatabase: (healthy) => health.push(healthy), sleep: async (ms) => void sleeps.push(ms) });
    for (let seq = 1; seq <= 6; seq++) {
      source.push(seq);
      await until(() => health.length === seq, `batch ${seq} reported`);
    }
    expect(sleeps).to.deep.equal([250, 500, 1000, 2000, 250]);
    expect(health).to.deep.equal([false, false, false, false, true, false]);
    await persister.stop();
    const backoff = new Backoff(DATABASE_BACKOFF);
    const schedule = Array.from({ length: 8 }, () => backoff.next());
    expect(schedule).to.deep.equal([250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000]);
  });

  it('does not wait out a backoff when stopped during it', async () => {
    const source = new FakeSource();
    const { handle } = fakeHandler(async () => ({ databaseDown: true }));
    let aborted = false;
    const persister = start(source, handle, {
      // A backoff that would never end by itself: only the stop's abort ends it.
      sleep: (_ms, signal) =>
        new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve();
          }),
        ),
    });
    source.push(1);
    await until(() => source.msgs[0]!.naked, 'the failed batch naked');
    await persister.stop();
    expect(aborted).to.equal(true);
  });
});
