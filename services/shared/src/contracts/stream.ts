import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { sleep } from '../platform/retry.js';
import type { FalconNames } from './names.js';

export interface StreamOptions {
  /** How long the stream keeps messages; realtime can resume clients within it. */
  maxAgeMs: number;
  /** Dedupe window for Idempotency-Key retries; the contract promises at least 2 minutes. */
  duplicateWindowMs: number;
  /** Upper bound on one stored message (envelope + headers). */
  maxMessageBytes: number;
  replicas: number;
}

export const DEFAULT_STREAM_OPTIONS: StreamOptions = {
  maxAgeMs: 24 * 3600_000,
  duplicateWindowMs: 5 * 60_000,
  maxMessageBytes: 256 * 1024,
  replicas: 1,
};

export function messagesStreamConfig(names: FalconNames, options: StreamOptions): Partial<StreamConfig> & { name: string } {
  return {
    name: names.stream,
    subjects: [names.subject],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(options.maxAgeMs),
    duplicate_window: nanos(options.duplicateWindowMs),
    max_msg_size: options.maxMessageBytes,
    num_replicas: options.replicas,
    allow_direct: true,
  };
}

export interface ConsumerOptions {
  /** Redelivery delay when the persister neither acks nor naks (a crashed replica). */
  ackWaitMs: number;
  /** Bound on messages handed out and not yet acknowledged, across all replicas. */
  maxAckPending: number;
}

export const DEFAULT_CONSUMER_OPTIONS: ConsumerOptions = {
  ackWaitMs: 30_000,
  maxAckPending: 20_000,
};

export function persisterConsumerConfig(names: FalconNames, options: ConsumerOptions): Partial<ConsumerConfig> {
  return {
    durable_name: names.persisterConsumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(options.ackWaitMs),
    // Unlimited: during a database outage every message fails, and a server-side limit would
    // silently drop it. The persister dead-letters a message that fails on its own instead.
    max_deliver: -1,
    max_ack_pending: options.maxAckPending,
    filter_subject: names.subject,
  };
}

// The library names no constant for "stream name already in use".
const STREAM_NAME_IN_USE = 10058;

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

/**
 * Creates the stream or brings its configuration up to date; safe to call from every replica
 * at once (a concurrent create is answered by an update).
 */
export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<StreamInfo> {
  try {
    await jsm.streams.info(config.name);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
    try {
      return await jsm.streams.add(config);
    } catch (addErr) {
      if (!isApiError(addErr, STREAM_NAME_IN_USE)) throw addErr;
    }
  }
  return jsm.streams.update(config.name, config);
}

export async function ensureMessagesStream(jsm: JetStreamManager, names: FalconNames, options: StreamOptions): Promise<StreamInfo> {
  return ensureStream(jsm, messagesStreamConfig(names, options));
}

/** Waits until ingest (the stream's owner) has created the stream. */
export async function waitForStream(jsm: JetStreamManager, name: string, onWait: () => void, signal?: AbortSignal): Promise<StreamInfo> {
  for (;;) {
    try {
      return await jsm.streams.info(name);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.StreamNotFound) || signal?.aborted) throw err;
      onWait();
      await sleep(1000, signal);
    }
  }
}

/** Creates or updates the persisters' shared durable consumer. */
export async function ensurePersisterConsumer(jsm: JetStreamManager, names: FalconNames, options: ConsumerOptions): Promise<void> {
  const config = persisterConsumerConfig(names, options);
  try {
    await jsm.consumers.add(names.stream, config);
  } catch (err) {
    // The server refuses to "add" an existing durable with a different config; update it instead.
    if (!(err instanceof JetStreamApiError)) throw err;
    await jsm.consumers.update(names.stream, names.persisterConsumer, config);
  }
}

/**
 * Pull settings for every consumer Falcon runs. Shorter than the client's defaults (30 s pulls,
 * 15 s heartbeats) so that a pull lost in a NATS reconnect is noticed and re-issued within
 * seconds: with the defaults a live feed could sit silent for ~45 s after a blip.
 */
export const PULL_OPTIONS = { expires: 5_000, idle_heartbeat: 2_000 } as const;
