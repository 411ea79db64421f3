import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
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
