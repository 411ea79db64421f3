import { welcomeFrame, type Counter, type Logger } from '@falcon/shared';
import type { FanOut, Subscriber } from './fan-out.js';
import { planResume } from './resume.js';

/**
 * Replays stream messages [fromSeq, toSeq] in order, handing each valid one to `deliver`
 * (which may wait, and answers false to stop); resolves with the last seq it went past.
 */
export type Replay = (fromSeq: number, toSeq: number, deliver: (seq: number, frame: string) => Promise<boolean>) => Promise<number>;

export interface CatchUpDeps {
  log: Logger;
  fanOut: FanOut;
  replay: Replay;
  bounds: { cachedFirstSeq(): number; freshFirstSeq(): Promise<number> };
  metrics: { resumes: Counter<'source'> };
  /** Catch-up frames are sent only while fewer bytes than this are queued. */
  resumeBufferBytes: number;
  /** A catching-up client whose queue does not shrink at all for this long is closed (1013). */
  stallMs: number;
}

export interface Subscriptions {
  /** Welcome, then whatever `since` asks for, then live: no gap, no duplicate. */
  open(subscriber: Subscriber, since: number | undefined): Promise<void>;
}

/**
 * The contract's resume. Every catch-up, from memory or from the stream, goes through one
 * paced loop: frames are sent while the connection's queue is under `resumeBufferBytes`, and
 * the loop waits for the transport to drain before sending more, so a fast reader of a long
 * history gets all of it (one cork of it would pass uWS' hard limit and be cut with 1006) and
 * a reader that stops is closed with 1013 and counted as slow.
 */
export function createSubscriptions(deps: CatchUpDeps): Subscriptions {
  const { fanOut } = deps;
  const room = (subscriber: Subscriber) => subscriber.waitForRoom(deps.resumeBufferBytes, deps.stallMs);

  async function catchUp(subscriber: Subscriber, since: number): Promise<void> {
    let last = since;
    for (;;) {
      if (subscriber.isClosed()) return;
      const slice = fanOut.framesAfter(last);
      if (!slice) {
        // Older than memory: from the stream, up to what the gateway has pushed by now.
        const reached = await deps.replay(last + 1, fanOut.lastSeq(), async (seq, frame) => {
          if (!(await room(subscriber))) return false;
          subscriber.sink.send(frame, seq);
          return true;
        });
        if (subscriber.isClosed()) return;
        if (reached <= last) throw new Error(`replay from ${last + 1} made no progress`);
        last = reached;
        continue;
      }
      let i = 0;
      while (i < slice.frames.length && subscriber.sink.bufferedAmount() < deps.resumeBufferBytes) {
        last = slice.seqs[i]!;
        subscriber.sink.send(slice.frames[i]!, last);
        i += 1;
      }
      if (i === slice.frames.length && subscriber.sink.bufferedAmount() < deps.resumeBufferBytes) {
        // Same synchronous step as framesAfter(): nothing was pushed in between, so the
        // hand-over to live has no gap and no duplicate.
        fanOut.goLive(subscriber);
        return;
      }
      if (!(await room(subscriber))) return;
    }
  }

  return {
    async open(subscriber, since) {
      const plan = planResume(since, {
        lastSeq: fanOut.lastSeq(),
        streamFirstSeq: deps.bounds.cachedFirstSeq(),
        inMemory: fanOut.inMemory,
      });
      if (plan.kind === 'live') {
        subscriber.sink.send(welcomeFrame(fanOut.lastSeq(), plan.recovered));
        fanOut.goLive(subscriber);
        return;
      }
      const welcomeSeq = fanOut.lastSeq();
      if (plan.kind === 'stream') {
        // Older than memory: confirm the stream still holds since + 1 before promising recovery.
        const firstSeq = await deps.bounds.freshFirstSeq();
        if (subscriber.isClosed()) return;
        if (plan.fromSeq < firstSeq) {
          subscriber.sink.send(welcomeFrame(welcomeSeq, false));
          fanOut.goLive(subscriber);
          return;
        }
      }
      deps.metrics.resumes.inc({ source: plan.kind });
      subscriber.sink.send(welcomeFrame(welcomeSeq, true));
      await catchUp(subscriber, plan.fromSeq - 1);
    },
  };
}
