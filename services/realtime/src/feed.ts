import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import { nuid } from '@nats-io/transport-node';
import { abortable, Backoff, isEnvelope, messageFrame, PULL_OPTIONS, sleep, type BackoffOptions, type FalconNames, type Logger } from '@falcon/shared';
import type { Replay } from './catch-up.js';

/** This replica's own ordered consumer of the stream from `fromSeq`: the one setup for the live feed and for replays. */
function orderedConsumer(js: JetStreamClient, names: FalconNames, purpose: 'realtime' | 'replay', fromSeq: number) {
  return js.consumers.get(names.stream, {
    // Unique per consumer: the client names an ordered consumer prefix_1, prefix_2, ..., so a
    // shared prefix would make two replicas replace each other's consumer on the server.
    name_prefix: `${names.namespace}-${purpose}-${nuid.next()}`,
    filter_subjects: names.subject,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromSeq,
  });
}

/** What the feed reads: stream messages in order until closed. */
export interface FeedSource extends AsyncIterable<{ seq: number; string(): string }> {
  close(): Promise<void | Error>;
}

export type OpenFeed = (fromSeq: number) => Promise<FeedSource>;

/**
 * Opens the live feed's consumer. The client library recreates an ordered consumer after a
 * reconnect, but here it was seen to sit silent for tens of seconds after one; so when
 * heartbeats go missing the source closes itself and the feed opens a replacement.
 */
export function liveFeedOpener(js: JetStreamClient, names: FalconNames, log: Logger): OpenFeed {
  return async (fromSeq) => {
    const consumer = await orderedConsumer(js, names, 'realtime', fromSeq);
    const messages = await consumer.consume({ max_messages: 1000, ...PULL_OPTIONS });
    void (async () => {
      for await (const status of messages.status()) {
        if (status.type === 'heartbeats_missed' || status.type === 'ordered_consumer_recreated') {
          log.info({ status: status.type }, 'live feed status');
        }
        if (status.type === 'heartbeats_missed') {
          void messages.close();
          return;
        }
      }
    })();
    return messages;
  };
}

export interface FeedDeps {
  open: OpenFeed;
  /** Where a (re)opened source starts: right after the last seq pushed. */
  nextSeq: () => number;
  push: (seq: number, envelope: string) => void;
  log: Logger;
  /** Aborting it stops the feed at once, a reopen or its backoff included. */
  signal?: AbortSignal;
  backoff?: BackoffOptions;
}

export interface Feed {
  /** Ends the feed, cancelling a reopen in progress; resolves once nothing is open. */
  stop(): Promise<void>;
  isRunning(): boolean;
  /** Settles when the feed ends: after stop(), or rejected when it cannot go on. */
  done: Promise<void>;
}

/** A stream that is gone will not come back under this feed: the gateway must restart. */
function isPermanent(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

/**
 * Every gateway follows the stream with its own consumer, never a shared durable: replicas
 * must not split the work. A source that ends or fails is replaced, starting right after the
 * last seq pushed (push() ignores seqs it has seen, so a replacement can overlap but never
 * leave a gap). The first open is awaited, so a failure there is a start-up error.
 */
export async function startFeed(deps: FeedDeps): Promise<Feed> {
  const stopping = new AbortController();
  const signal = deps.signal ? AbortSignal.any([deps.signal, stopping.signal]) : stopping.signal;
  const backoff = new Backoff(deps.backoff ?? { initialMs: 250, maxMs: 5_000 });
  let current: FeedSource | undefined;

  /** Opens a source, or undefined when stopped; one that opens after a stop is closed. */
  async function open(): Promise<FeedSource | undefined> {
    const opening = deps.open(deps.nextSeq());
    try {
      return await abortable(opening, signal);
    } catch (err) {
      if (!signal.aborted) throw err;
      void opening.then((late) => late.close()).catch(() => undefined);
      return undefined;
    }
  }

  current = await open();
  const done = (async () => {
    while (current && !signal.aborted) {
      try {
        for await (const m of current) deps.push(m.seq, m.string());
      } catch (err) {
        if (!signal.aborted) deps.log.warn({ err }, 'live feed failed; replacing it');
      }
      current = undefined;
      while (!current && !signal.aborted) {
        try {
          current = await open();
          if (current) deps.log.info({ fromSeq: deps.nextSeq() }, 'live feed replaced');
          backoff.reset();
        } catch (err) {
          if (isPermanent(err)) throw err;
          const retryInMs = backoff.next();
          deps.log.warn({ err, retryInMs }, 'live feed could not be replaced yet');
          await sleep(retryInMs, signal).catch(() => undefined);
        }
      }
    }
    // A stop that came while a source was open: it is closed by stop().
  })();
  return {
    isRunning: () => current !== undefined && !signal.aborted,
    done,
    async stop() {
      stopping.abort();
      await current?.close();
      await done.catch(() => undefined);
    },
  };
}

/** Replays a range from the stream for one resuming client, with a short-lived ordered consumer. */
export function createReplay(js: JetStreamClient, names: FalconNames): Replay {
  return async (fromSeq, toSeq, deliver) => {
    const consumer = await orderedConsumer(js, names, 'replay', fromSeq);
    const info = await consumer.info();
    if (info.num_pending === 0) return toSeq;
    const messages = await consumer.consume({ max_messages: 500, ...PULL_OPTIONS });
    let last = fromSeq - 1;
    try {
      for await (const m of messages) {
        if (m.seq > toSeq) break;
        const envelope = m.string();
        // The same rule as the live push: only what the persister would store.
        if (isEnvelope(envelope) && !(await deliver(m.seq, messageFrame(m.seq, envelope)))) break;
        last = m.seq;
        if (m.seq >= toSeq || m.info.pending === 0) break;
      }
    } finally {
      await messages.close();
    }
    return last;
  };
}
