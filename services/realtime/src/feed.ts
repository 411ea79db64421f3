import { DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { nuid } from '@nats-io/transport-node';
import { isEnvelope, messageFrame, PULL_OPTIONS, type FalconNames, type Logger } from '@falcon/shared';
import type { Replay, StreamBounds } from './gateway.js';

export interface Feed {
  stop(): Promise<void>;
  done: Promise<void>;
}

/**
 * This replica's own ordered consumer: every gateway sees every message, in order. Never a
 * shared durable: replicas must not split the work. The client library recreates an ordered
 * consumer after a reconnect, but here it was seen to sit silent for tens of seconds after
 * one; so when heartbeats go missing the feed replaces its consumer itself, starting right
 * after the last seq it pushed. push() ignores seqs it has already seen, so a replacement can
 * overlap but never leave a gap.
 */
export async function startFeed(
  js: JetStreamClient,
  names: FalconNames,
  nextSeq: () => number,
  push: (seq: number, envelope: string) => void,
  log: Logger,
): Promise<Feed> {
  let stopped = false;
  let current: ConsumerMessages | undefined;

  async function open(): Promise<ConsumerMessages> {
    const consumer = await js.consumers.get(names.stream, {
      // Unique per consumer: the client names an ordered consumer prefix_1, prefix_2, ..., so a
      // shared prefix would make two replicas replace each other's consumer on the server.
      name_prefix: `${names.namespace}-realtime-${nuid.next()}`,
      filter_subjects: names.subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: nextSeq(),
    });
    const messages = await consumer.consume({ max_messages: 1000, ...PULL_OPTIONS });
    void (async () => {
      for await (const status of messages.status()) {
        if (status.type === 'heartbeats_missed' || status.type === 'ordered_consumer_recreated') {
          log.info({ status: status.type }, 'live feed status');
        }
        if (status.type === 'heartbeats_missed' && !stopped) {
          // Ends the pump below, which opens a replacement.
          void messages.close();
          return;
        }
      }
    })();
    return messages;
  }

  const first = await open();
  current = first;
  const done = (async () => {
    let messages: ConsumerMessages | undefined = first;
    let backoffMs = 250;
    while (!stopped) {
      if (!messages) {
        try {
          messages = await open();
          current = messages;
          backoffMs = 250;
          log.info({ fromSeq: nextSeq() }, 'live feed replaced');
        } catch (err) {
          log.warn({ err, retryInMs: backoffMs }, 'live feed could not be replaced yet');
          await new Promise((resolve) => setTimeout(resolve, backoffMs));
          backoffMs = Math.min(5_000, backoffMs * 2);
          continue;
        }
      }
      for await (const m of messages) push(m.seq, m.string());
      messages = undefined;
    }
  })();
  return {
    done,
    async stop() {
      stopped = true;
      await current?.close();
      await done;
    },
  };
}

/** Replays a range from the stream for one resuming client, with a short-lived ordered consumer. */
export function createReplay(js: JetStreamClient, names: FalconNames): Replay {
  return async (fromSeq, toSeq, deliver) => {
    const consumer = await js.consumers.get(names.stream, {
      name_prefix: `${names.namespace}-replay-${nuid.next()}`,
      filter_subjects: names.subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
    });
    const info = await consumer.info();
    if (info.num_pending === 0) return toSeq;
    const messages = await consumer.consume({ max_messages: 500, ...PULL_OPTIONS });
    let last = fromSeq - 1;
    try {
      for await (const m of messages) {
        if (m.seq > toSeq) break;
        const envelope = m.string();
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

export interface PipelineStatus {
  /** Messages the stream has accepted (its last seq). */
  received: number;
  /** Messages held by the stream now (within its retention). */
  retained: number;
  /** Every message up to this seq is stored in Postgres (the persister's ack floor). */
  persisted: number | null;
  /** Messages not yet handed to any persister replica. */
  pending: number | null;
  /** Messages handed out and not yet acknowledged (being written). */
  unacknowledged: number | null;
  redelivered: number | null;
  updatedAt: string;
}

/**
 * The stream's and the persister consumer's state, refreshed every second from JetStream's
 * own info APIs (no service is asked over HTTP). It also tracks the stream's oldest seq for
 * resume decisions, which only ever grows.
 */
export function createStreamBounds(jsm: JetStreamManager, names: FalconNames, initialFirstSeq: number, log: Logger, intervalMs = 1_000) {
  let firstSeq = initialFirstSeq;
  let status: PipelineStatus | undefined;
  const fresh = async (): Promise<number> => {
    const info = await jsm.streams.info(names.stream);
    firstSeq = Math.max(firstSeq, info.state.first_seq);
    const consumer = await jsm.consumers.info(names.stream, names.persisterConsumer).catch(() => undefined);
    status = {
      received: info.state.last_seq,
      retained: info.state.messages,
      persisted: consumer ? consumer.ack_floor.stream_seq : null,
      pending: consumer ? consumer.num_pending : null,
      unacknowledged: consumer ? consumer.num_ack_pending : null,
      redelivered: consumer ? consumer.num_redelivered : null,
      updatedAt: new Date().toISOString(),
    };
    return firstSeq;
  };
  const timer = setInterval(() => {
    fresh().catch((err: unknown) => log.debug({ err }, 'stream info failed'));
  }, intervalMs);
  timer.unref();
  void fresh().catch(() => undefined);
  const bounds: StreamBounds & { stop(): void; status(): PipelineStatus | undefined } = {
    cachedFirstSeq: () => firstSeq,
    freshFirstSeq: fresh,
    status: () => status,
    stop: () => clearInterval(timer),
  };
  return bounds;
}
