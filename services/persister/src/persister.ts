import type { JsMsg } from '@nats-io/jetstream';
import type { Counter, Histogram, Logger } from '@falcon/shared';
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
  log: Logger;
  metrics: PersisterMetrics;
  /** Called after every batch with whether the database took it (for /readyz). */
  onDatabase?: (healthy: boolean) => void;
}

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
 * stays low when traffic is light and batches grow when it is heavy. One batch is written at
 * a time; while it is written the next one fills up.
 */
export function startPersister(deps: PersisterDeps): Persister {
  const buffer: JsMsg[] = [];
  let writing: Promise<void> | undefined;
  let scheduled = false;
  let stopping = false;
  let backoffMs = 0;
  let wake: (() => void) | undefined;

  function record(outcome: BatchOutcome, size: number, seconds: number): void {
    deps.metrics.batchSeconds.observe(seconds);
    deps.metrics.batchSize.observe(size);
    if (outcome.stored) deps.metrics.messages.inc({ outcome: 'stored' }, outcome.stored);
    if (outcome.duplicates) deps.metrics.messages.inc({ outcome: 'duplicate' }, outcome.duplicates);
    if (outcome.deadLettered) deps.metrics.messages.inc({ outcome: 'dead_lettered' }, outcome.deadLettered);
    if (outcome.retried) deps.metrics.messages.inc({ outcome: 'retried' }, outcome.retried);
  }

  async function pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wake = undefined;
  }

  async function writeAll(): Promise<void> {
    while (buffer.length > 0) {
      const batch = buffer.splice(0, deps.batchSize);
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
        // Back off so an unreachable database is not hammered; the naked messages return later.
        backoffMs = Math.min(15_000, backoffMs ? backoffMs * 2 : 250);
        if (!stopping) await pause(backoffMs);
      } else {
        backoffMs = 0;
      }
    }
  }

  function flush(): Promise<void> {
    if (!writing) {
      writing = writeAll().finally(() => {
        writing = undefined;
        if (buffer.length > 0) schedule();
      });
    }
    return writing;
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
      if (buffer.length >= deps.batchSize) await flush();
      else schedule();
    }
    while (buffer.length > 0 || writing) await flush();
  })();

  return {
    done,
    async stop() {
      stopping = true;
      wake?.();
      await deps.messages.close();
      await done;
    },
  };
}
