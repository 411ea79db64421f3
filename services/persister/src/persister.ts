import type { JsMsg } from '@nats-io/jetstream';
import { Backoff, sleep, type BackoffOptions, type Counter, type Histogram, type Logger } from '@falcon/shared';
import type { BatchHandler, BatchOutcome, Delivery } from './batch.js';

export interface PersisterMetrics {
  messages: Counter<'outcome'>;
  batchSeconds: Histogram;
  batchSize: Histogram;
}

export interface MessageSource extends AsyncIterable<JsMsg> {
  close(): Promise<void | Error>;
}

export interface PersisterDeps {
  messages: MessageSource;
  handle: BatchHandler;
  batchSize: number;
  /** Batches written at once: while Postgres commits one, the next is prepared and sent. */
  concurrency?: number;
  log: Logger;
  metrics: PersisterMetrics;
  /** Called after every batch with whether the database took it (for /readyz). */
  onDatabase?: (healthy: boolean) => void;
  /** The wait after a failed batch; must resolve as soon as `signal` aborts (on stop). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Waits `ms`, or less if `signal` aborts; never rejects. */
export const abortableSleep = (ms: number, signal: AbortSignal): Promise<void> => sleep(ms, signal).catch(() => undefined);

/** Waits after database failures in a row: 250 ms doubling to 15 s. */
export const DATABASE_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 15_000 };

export interface Persister {
  /** Stops taking messages, stores and acks what was already taken, then resolves. */
  stop(): Promise<void>;
  /** Resolves when the loop has ended (after stop, or if the source ends). */
  done: Promise<void>;
}

export function toDelivery(m: JsMsg): Delivery {
  return {
    seq: m.seq,
    deliveryCount: m.info.deliveryCount,
    text: () => m.string(),
    ack: () => m.ack(),
    nak: (delayMs) => m.nak(delayMs),
  };
}

/**
 * Takes messages from the durable consumer into batches: a batch is written as soon as it is
 * full, or as soon as no more messages are immediately waiting (setImmediate), so latency
 * stays low when traffic is light and batches grow when it is heavy. Up to `concurrency`
 * full batches are written at once (a profile of one writer showed it idle a third of the
 * time, waiting on Postgres); each is its own transaction and acks only its own messages.
 */
export function startPersister(deps: PersisterDeps): Persister {
  const buffer: JsMsg[] = [];
  const concurrency = deps.concurrency ?? 2;
  const writers = new Set<Promise<void>>();
  let scheduled = false;
  // A database that is down is not hammered: each failed batch waits longer before the next.
  const backoff = new Backoff(DATABASE_BACKOFF);
  const stopping = new AbortController();
  const wait = deps.sleep ?? abortableSleep;

  function record(outcome: BatchOutcome, size: number, seconds: number): void {
    deps.metrics.batchSeconds.observe(seconds);
    deps.metrics.batchSize.observe(size);
    if (outcome.stored) deps.metrics.messages.inc({ outcome: 'stored' }, outcome.stored);
    if (outcome.duplicates) deps.metrics.messages.inc({ outcome: 'duplicate' }, outcome.duplicates);
    if (outcome.deadLettered) deps.metrics.messages.inc({ outcome: 'dead_lettered' }, outcome.deadLettered);
    if (outcome.retried) deps.metrics.messages.inc({ outcome: 'retried' }, outcome.retried);
  }

  async function writeOne(): Promise<void> {
    const batch = buffer.splice(0, deps.batchSize);
    if (batch.length === 0) return;
    const started = process.hrtime.bigint();
    let outcome: BatchOutcome;
    try {
      outcome = await deps.handle(batch.map(toDelivery));
    } catch (err) {
      deps.log.error({ err, count: batch.length }, 'batch handler failed; messages released for redelivery');
      for (const m of batch) m.nak(1000);
      outcome = { stored: 0, duplicates: 0, deadLettered: 0, retried: batch.length, databaseDown: true };
    }
    record(outcome, batch.length, Number(process.hrtime.bigint() - started) / 1e9);
    deps.onDatabase?.(!outcome.databaseDown);
    if (outcome.stored + outcome.duplicates > 0) {
      deps.log.debug({ firstSeq: batch[0]?.seq, count: batch.length, stored: outcome.stored }, 'batch persisted');
    }
    if (outcome.databaseDown) {
      // The naked messages return later; a stop ends the wait at once.
      if (!stopping.signal.aborted) await wait(backoff.next(), stopping.signal);
    } else {
      backoff.reset();
    }
  }

  /**
   * Starts writers; resolves when one of them finishes. With no writer busy, whatever is
   * waiting is written at once (low latency when traffic is light). A second writer starts
   * only for a full batch: under moderate load, messages that arrive while one batch commits
   * wait for it and go together in the next (group commit), instead of two writers each
   * paying a round trip, a WAL flush and an ack write for a handful of messages; with a
   * backlog, batches are full and up to `concurrency` are written at once.
   */
  function flush(): Promise<void> {
    while (buffer.length > 0 && (writers.size === 0 || (writers.size < concurrency && buffer.length >= deps.batchSize))) {
      const writer: Promise<void> = writeOne().finally(() => {
        writers.delete(writer);
        if (buffer.length > 0) schedule();
      });
      writers.add(writer);
    }
    return writers.size > 0 ? Promise.race(writers) : Promise.resolve();
  }

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      void flush();
    });
  }

  const done = (async () => {
    for await (const m of deps.messages) {
      buffer.push(m);
      // Backpressure: with every writer busy and a full batch waiting, stop taking messages.
      while (buffer.length >= deps.batchSize && writers.size >= concurrency) await Promise.race(writers);
      if (buffer.length >= deps.batchSize) void flush();
      else schedule();
    }
    while (buffer.length > 0 || writers.size > 0) await flush();
  })();

  return {
    done,
    async stop() {
      stopping.abort();
      await deps.messages.close();
      await done;
    },
  };
}
