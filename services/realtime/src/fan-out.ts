import { messageFrame, splitEnvelope, type Logger } from '@falcon/shared';
import type { FrameHistory } from './history.js';
import type { RealtimeMetrics } from './metrics.js';

/** Close codes: RFC 6455 section 7.4.1 and the IANA registry. */
export const CLOSE_GOING_AWAY = 1001;
/** The token the connection was opened with has expired. */
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_TRY_AGAIN_LATER = 1013;

/**
 * One client connection as the fan-out and the resume see it, whatever carries it
 * (a WebSocket, a Server-Sent Events response).
 */
export interface SubscriberSink {
  /**
   * Queues one frame. Never drops: the slow-client rule bounds what is queued. `seq` is the
   * message's (SSE's event id); the welcome frame has none.
   */
  send(frame: string, seq?: number): void;
  /** Bytes queued and not yet handed to the socket. */
  bufferedAmount(): number;
  /** Ends the connection with a WebSocket close code (a transport without codes maps them). */
  close(code: number, reason: string): void;
  /**
   * Joins the transport's own broadcast (uWS topics, which fan out in native code) instead
   * of being sent each frame by the fan-out.
   */
  join?(): void;
}

/** A sink registered with the fan-out; the transport reports its events here. */
export interface Subscriber {
  readonly sink: SubscriberSink;
  isClosed(): boolean;
  /** The transport has room again (uWS `drain`, an HTTP response's `onWritable`). */
  drained(): void;
  /** The transport's connection is gone. */
  closed(): void;
  /**
   * Resolves true once fewer than `level` bytes are queued; false if the connection closed or
   * made no progress at all for `stallMs` (then it is closed as slow).
   */
  waitForRoom(level: number, stallMs: number): Promise<boolean>;
}

export interface FanOutDeps {
  log: Logger;
  metrics: Pick<RealtimeMetrics, 'clients' | 'frames' | 'slowDisconnects' | 'deliveryLag'>;
  now?: () => number;
  history: FrameHistory;
  /** The stream's last seq when the live feed began. */
  startSeq: number;
  /** Queued bytes above which a client is closed with 1013. */
  maxBackpressure: number;
  /** Sends a frame to every sink that joined through its transport's broadcast. */
  broadcast?: (frame: string) => void;
  sweepIntervalMs?: number;
}

export interface FanOut {
  /** Feeds one stream message (envelope text) to every live subscriber. */
  push(seq: number, envelope: string): void;
  lastSeq(): number;
  /** Frames after `since` with their seqs, if memory still holds all of them. */
  framesAfter(since: number): { seqs: number[]; frames: string[] } | undefined;
  inMemory(since: number): boolean;
  /** Registers a connection: counted and held to the slow-client rule, not yet live. */
  add(sink: SubscriberSink): Subscriber;
  /** Makes a subscriber live. Call it in the same synchronous step as its last catch-up frame. */
  goLive(subscriber: Subscriber): void;
  /** Closes a subscriber with 1013 and counts it as slow. */
  disconnectSlow(subscriber: Subscriber, why: string): void;
  size(): number;
  /** Closes every subscriber with `code` (1001 on shutdown, so clients reconnect elsewhere). */
  closeAll(code: number, reason: string): void;
  stop(): void;
}

/** The envelope's receivedAt, or undefined when it is not an envelope the persister would store. */
function receivedAtOf(envelope: string): string | undefined {
  try {
    return splitEnvelope(envelope).receivedAt;
  } catch {
    return undefined;
  }
}

interface Entry extends Subscriber {
  waiter: (() => void) | undefined;
}

/**
 * Every message goes to every live subscriber, in seq order, and a subscriber that cannot
 * keep up is closed with 1013 rather than slowing the others or growing the gateway's memory.
 *
 * The rule is checked by a sweep every 100 ms (keeping a push O(1) per message), and also as
 * soon as the bytes pushed since the last sweep would reach the limit: after a sweep every
 * subscriber holds at most `maxBackpressure`, so no subscriber can pass twice that (uWS' own
 * hard limit, which would cut it with 1006) before the next sweep closes it with 1013.
 */
export function createFanOut(deps: FanOutDeps): FanOut {
  const all = new Set<Entry>();
  /** Live sinks that have no broadcast of their own. */
  const direct = new Set<Entry>();
  let lastSeq = deps.startSeq;
  let bytesSinceSweep = 0;
  const now = deps.now ?? Date.now;

  const count = () => deps.metrics.clients.set(all.size);

  function disconnectSlow(subscriber: Subscriber, why: string): void {
    if (subscriber.isClosed()) return;
    deps.metrics.slowDisconnects.inc();
    deps.log.info({ buffered: subscriber.sink.bufferedAmount(), why }, 'slow client disconnected');
    subscriber.sink.close(CLOSE_TRY_AGAIN_LATER, 'too slow; reconnect with since');
    subscriber.closed();
  }

  function sweep(): void {
    bytesSinceSweep = 0;
    for (const entry of all) {
      if (entry.sink.bufferedAmount() > deps.maxBackpressure) disconnectSlow(entry, 'over the backpressure limit');
    }
  }
  const timer = setInterval(sweep, deps.sweepIntervalMs ?? 100);
  timer.unref();

  return {
    push(seq, envelope) {
      if (seq <= lastSeq) return;
      const receivedAt = receivedAtOf(envelope);
      if (receivedAt === undefined) {
        // Not a message the persister would store (a foreign publisher): browsers get only
        // contract frames, and the same set the query API will return.
        lastSeq = seq;
        deps.log.warn({ seq }, 'skipped a stream message that is not a Falcon envelope');
        return;
      }
      const frame = messageFrame(seq, envelope);
      if (bytesSinceSweep + frame.length > deps.maxBackpressure) sweep();
      bytesSinceSweep += frame.length;
      deps.history.push(seq, frame);
      lastSeq = seq;
      deps.broadcast?.(frame);
      for (const entry of direct) entry.sink.send(frame, seq);
      deps.metrics.frames.inc();
      deps.metrics.deliveryLag.observe(Math.max(0, now() - Date.parse(receivedAt)) / 1000);
    },
    lastSeq: () => lastSeq,
    framesAfter: (since) => deps.history.slice(since, lastSeq),
    inMemory: (since) => deps.history.holds(since, lastSeq),
    add(sink) {
      let closed = false;
      const entry: Entry = {
        sink,
        waiter: undefined,
        isClosed: () => closed,
        drained: () => entry.waiter?.(),
        closed() {
          if (closed) return;
          closed = true;
          all.delete(entry);
          direct.delete(entry);
          count();
          entry.waiter?.();
        },
        waitForRoom(level, stallMs) {
          if (closed) return Promise.resolve(false);
          if (sink.bufferedAmount() < level) return Promise.resolve(true);
          return new Promise<boolean>((resolve) => {
            let buffered = sink.bufferedAmount();
            let timer: NodeJS.Timeout;
            const done = (ok: boolean) => {
              clearTimeout(timer);
              entry.waiter = undefined;
              resolve(ok);
            };
            const stalled = () => {
              done(false);
              disconnectSlow(entry, 'no progress while catching up');
            };
            timer = setTimeout(stalled, stallMs);
            entry.waiter = () => {
              if (closed) return done(false);
              const now = sink.bufferedAmount();
              if (now < level) return done(true);
              // Any progress restarts the clock: a slow reader is fine, a stuck one is not.
              if (now < buffered) {
                buffered = now;
                clearTimeout(timer);
                timer = setTimeout(stalled, stallMs);
              }
            };
          });
        },
      };
      all.add(entry);
      count();
      return entry;
    },
    goLive(subscriber) {
      const entry = subscriber as Entry;
      if (entry.isClosed()) return;
      if (entry.sink.join) entry.sink.join();
      else direct.add(entry);
    },
    disconnectSlow,
    size: () => all.size,
    closeAll(code, reason) {
      for (const entry of [...all]) {
        entry.sink.close(code, reason);
        entry.closed();
      }
    },
    stop: () => clearInterval(timer),
  };
}
