import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';
import { decodeEnvelope, encodeEnvelope, newMessageId, type AcceptedResponse, type FalconNames } from '@falcon/shared';

export interface Publisher {
  /**
   * Publishes one message and resolves after the stream has stored it. With an idempotency
   * key, a retry inside the dedupe window resolves to the original id and seq.
   */
  publish(payloadJson: string, idempotencyKey?: string, publisher?: string): Promise<AcceptedResponse>;
}

export interface PublisherDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: FalconNames;
  timeoutMs: number;
  now?: () => Date;
}

/**
 * How ingest answers a failed publish. `unavailable` (503 + Retry-After) is the contract's "the
 * stream cannot acknowledge in time": no PubAck before the timeout, nothing answering on the
 * subject (no responders: the stream is gone or has no leader), the connection closed or
 * draining, or JetStream itself saying it is unavailable (an API error with status 503, such as
 * "JetStream system temporarily unavailable" or a full stream). A retry with the same key is safe
 * and may succeed. Everything else (a permission violation, a message over the stream's size
 * limit, JetStream not enabled for the account, a malformed PubAck) will not be cured by
 * retrying: `internal`, a logged 500.
 */
export type PublishFailure = 'unavailable' | 'internal';

export function classifyPublishError(err: unknown): PublishFailure {
  // The library wraps (JetStreamNotEnabled around a RequestError around NoRespondersError), so
  // the whole cause chain is read, outermost first.
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof errors.TimeoutError || e instanceof errors.NoRespondersError) return 'unavailable';
    if (e instanceof errors.ClosedConnectionError || e instanceof errors.DrainingConnectionError || e instanceof errors.ConnectionError) return 'unavailable';
    if (e instanceof JetStreamApiError) {
      if (e.code === JetStreamApiCodes.JetStreamNotEnabledForAccount) return 'internal';
      if (e.code === JetStreamApiCodes.StreamNotFound) return 'unavailable';
      return e.status === 503 ? 'unavailable' : 'internal';
    }
  }
  return 'internal';
}

/** Keys and generated ids live in separate dedupe namespaces so a key can never equal an id. */
export function dedupeId(id: string, idempotencyKey?: string): string {
  return idempotencyKey === undefined ? `id:${id}` : `key:${idempotencyKey}`;
}

export function createPublisher(deps: PublisherDeps): Publisher {
  const now = deps.now ?? (() => new Date());
  return {
    async publish(payloadJson, idempotencyKey, publisher) {
      const id = newMessageId();
      const receivedAt = now().toISOString();
      const ack = await deps.js.publish(deps.names.subject, encodeEnvelope(id, receivedAt, payloadJson, publisher), {
        msgID: dedupeId(id, idempotencyKey),
        timeout: deps.timeoutMs,
      });
      if (!ack.duplicate) return { id, seq: ack.seq, receivedAt, duplicate: false };
      // The stream kept the first copy: answer with its id and receipt time (JetStream only
      // tells us its seq), so the retry is indistinguishable from the original answer.
      const original = await deps.jsm.streams.getMessage(deps.names.stream, { seq: ack.seq });
      if (!original) throw new Error(`stream no longer holds seq ${ack.seq} inside the dedupe window`);
      const envelope = decodeEnvelope(original.string());
      return { id: envelope.id, seq: ack.seq, receivedAt: envelope.receivedAt, duplicate: true };
    },
  };
}
