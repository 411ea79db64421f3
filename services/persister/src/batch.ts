import { backoffDelay, isDatabaseUnavailable, isTransientDbError, splitEnvelope, type Logger } from '@falcon/shared';
import type { MessageRow, MessageStore } from './store.js';

/** What the batch handler needs of a stream message; JsMsg satisfies it through toDelivery. */
export interface Delivery {
  seq: number;
  /** 1 on first delivery. */
  deliveryCount: number;
  text(): string;
  ack(): void;
  nak(delayMs: number): void;
}

export interface BatchOutcome {
  stored: number;
  duplicates: number;
  deadLettered: number;
  retried: number;
  /** The database failed as a whole: the caller should back off before the next batch. */
  databaseDown: boolean;
}

export interface BatchHandlerDeps {
  store: MessageStore;
  log: Logger;
  /** A message failing on its own this many times is dead-lettered instead of retried. */
  maxDeliver: number;
  isTransient?: (err: unknown) => boolean;
  /** Whether a failure is the whole database being out of reach rather than this message. */
  isDatabaseDown?: (err: unknown) => boolean;
}

/**
 * How often each message has failed when written on its own, by stream seq. JetStream's
 * delivery count cannot serve: it also counts every redelivery during a database outage, so
 * after a long one a message would be dead-lettered on its first real failure. Kept in memory:
 * a restart or another replica starts counting afresh, which only ever allows more retries,
 * never fewer. Bounded, oldest forgotten first (a message acked by another replica is never
 * seen again here).
 */
export class FailureCounts {
  private readonly counts = new Map<number, number>();

  constructor(private readonly capacity = 10_000) {}

  /** Records one more failure and returns how many there have been. */
  add(seq: number): number {
    const count = (this.counts.get(seq) ?? 0) + 1;
    this.counts.delete(seq);
    this.counts.set(seq, count);
    if (this.counts.size > this.capacity) this.counts.delete(this.counts.keys().next().value!);
    return count;
  }

  forget(seq: number): void {
    if (this.counts.size > 0) this.counts.delete(seq);
  }

  get size(): number {
    return this.counts.size;
  }
}

/** Redelivery delay after a failure: 0.5 s doubling to 30 s, by delivery count. */
export function nakDelay(deliveryCount: number): number {
  return backoffDelay(deliveryCount, { initialMs: 500, maxMs: 30_000 });
}

function errorText(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e?.code ? `${e.code}: ${e.message ?? String(err)}` : (e?.message ?? String(err));
}

/**
 * Stores a batch in one statement and acks only after it committed. When the statement fails
 * for a reason tied to the data (not the database being down), the batch is split so that one
 * bad message never holds back the others: each is retried alone, and the ones that cannot
 * succeed go to dead_letters with the reason, then are acked. Only failures of a message
 * written alone count towards `maxDeliver`; a database outage naks without using them up.
 */
export function createBatchHandler(deps: BatchHandlerDeps) {
  const isTransient = deps.isTransient ?? isTransientDbError;
  const isDatabaseDown = deps.isDatabaseDown ?? isDatabaseUnavailable;
  const failures = new FailureCounts();

  async function deadLetter(d: Delivery, row: MessageRow | undefined, reason: string, outcome: BatchOutcome): Promise<void> {
    failures.forget(d.seq);
    try {
      await deps.store.deadLetter({
        seq: d.seq,
        id: row?.id ?? null,
        receivedAt: row?.receivedAt ?? null,
        deliveries: d.deliveryCount,
        reason,
        envelope: d.text(),
      });
      deps.log.error({ seq: d.seq, id: row?.id, deliveries: d.deliveryCount, reason }, 'message dead-lettered');
      d.ack();
      outcome.deadLettered += 1;
    } catch (err) {
      deps.log.warn({ err, seq: d.seq }, 'dead-letter write failed; message kept for redelivery');
      d.nak(nakDelay(d.deliveryCount));
      outcome.retried += 1;
    }
  }

  async function one(d: Delivery, row: MessageRow, outcome: BatchOutcome): Promise<void> {
    try {
      const inserted = await deps.store.insert([row]);
      d.ack();
      failures.forget(d.seq);
      outcome.stored += inserted;
      outcome.duplicates += 1 - inserted;
    } catch (err) {
      if (isTransient(err) && isDatabaseDown(err)) {
        // The database went away under this message: not its failure.
        d.nak(nakDelay(d.deliveryCount));
        outcome.retried += 1;
        outcome.databaseDown = true;
        return;
      }
      const count = isTransient(err) ? failures.add(d.seq) : deps.maxDeliver;
      if (count < deps.maxDeliver) {
        deps.log.warn({ err, seq: d.seq, failures: count }, 'message failed on its own; will retry');
        d.nak(nakDelay(count));
        outcome.retried += 1;
      } else {
        await deadLetter(d, row, errorText(err), outcome);
      }
    }
  }

  return async function handle(batch: Delivery[]): Promise<BatchOutcome> {
    const outcome: BatchOutcome = { stored: 0, duplicates: 0, deadLettered: 0, retried: 0, databaseDown: false };
    const rows: MessageRow[] = [];
    const good: Delivery[] = [];
    for (const d of batch) {
      try {
        rows.push({ seq: d.seq, ...splitEnvelope(d.text()) });
        good.push(d);
      } catch (err) {
        await deadLetter(d, undefined, `undecodable stream message: ${errorText(err)}`, outcome);
      }
    }
    if (rows.length === 0) return outcome;
    try {
      const inserted = await deps.store.insert(rows);
      for (const d of good) {
        d.ack();
        failures.forget(d.seq);
      }
      outcome.stored += inserted;
      outcome.duplicates += rows.length - inserted;
      return outcome;
    } catch (err) {
      // A deadlock or a statement timeout is transient too, but may be one message's doing:
      // only the database being out of reach naks the whole batch; anything else splits it.
      if (isTransient(err) && isDatabaseDown(err)) {
        deps.log.warn({ err, count: rows.length, firstSeq: rows[0]?.seq }, 'batch not stored; database unavailable, will retry');
        for (const d of good) d.nak(nakDelay(d.deliveryCount));
        outcome.retried += good.length;
        outcome.databaseDown = true;
        return outcome;
      }
      deps.log.warn({ err, count: rows.length }, 'batch rejected; storing its messages one by one');
    }
    for (let i = 0; i < rows.length; i++) {
      if (outcome.databaseDown) {
        // Once the database is gone, the rest would only wait for their own connection errors.
        good[i]!.nak(nakDelay(good[i]!.deliveryCount));
        outcome.retried += 1;
      } else {
        await one(good[i]!, rows[i]!, outcome);
      }
    }
    return outcome;
  };
}

export type BatchHandler = ReturnType<typeof createBatchHandler>;
