import type { JetStreamManager } from '@nats-io/jetstream';
import type { FalconNames, Logger } from '@falcon/shared';

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

export interface StreamBounds {
  /** Oldest seq the stream holds, as last seen (it only grows). */
  cachedFirstSeq(): number;
  /** Asks the stream now. */
  freshFirstSeq(): Promise<number>;
  /** The pipeline's counters as last read from JetStream, for the page. */
  status(): PipelineStatus | undefined;
  stop(): void;
}

/**
 * The stream's and the persister consumer's state, refreshed every second from JetStream's
 * own info APIs (no service is asked over HTTP). It also tracks the stream's oldest seq for
 * resume decisions, which only ever grows.
 */
export function createStreamBounds(jsm: JetStreamManager, names: FalconNames, initialFirstSeq: number, log: Logger, intervalMs = 1_000): StreamBounds {
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
  return {
    cachedFirstSeq: () => firstSeq,
    freshFirstSeq: fresh,
    status: () => status,
    stop: () => clearInterval(timer),
  };
}
