import { JetStreamApiCodes, JetStreamApiError, JetStreamError, type JetStreamManager } from '@nats-io/jetstream';
import { createInbox, errors, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { decodeEnvelope, encodeEnvelope, newMessageId, type AcceptedResponse, type FalconNames } from '@falcon/shared';

export interface Publisher {
  /**
   * Publishes one message and resolves after the stream has stored it. With an idempotency
   * key, a retry inside the dedupe window resolves to the original id and seq.
   */
  publish(payloadJson: string, idempotencyKey?: string, publisher?: string): Promise<AcceptedResponse>;
}

export interface PublisherDeps {
  nc: NatsConnection;
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

interface PubAck {
  stream?: string;
  seq: number;
  duplicate?: boolean;
  error?: { code: number; err_code: number; description: string };
}

interface Waiting {
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  deadline: number;
}

/** How often waiting publishes are checked against their deadline. */
const SWEEP_MS = 100;

/**
 * The JetStream publish protocol (a core publish with a reply subject, answered by the stream
 * with a PubAck; https://docs.nats.io/reference/reference-protocols/nats_api_reference) on one
 * reply subscription shared by every request, with one timer sweeping deadlines. The client's
 * own request builds a resolver, a timer and two Error objects (for stack traces) per call:
 * the profile of ingest under load had them at ~7% of its CPU. Publishes requested within one
 * turn of the event loop are handed to the connection together, so they leave in one write
 * instead of one syscall each. Errors keep the client's types: JetStreamApiError for a refusal,
 * TimeoutError, and RequestError caused by NoRespondersError when no stream listens.
 */
function createStreamPublisher(nc: NatsConnection, subject: string, timeoutMs: number) {
  const inbox = createInbox();
  const prefix = inbox.length + 1;
  const waiting = new Map<string, Waiting>();
  const queued: { token: string; data: string; msgId: string }[] = [];
  let counter = 0;
  let flushing = false;

  nc.subscribe(`${inbox}.*`, {
    callback: (err, msg: Msg) => {
      if (err) return;
      const token = msg.subject.slice(prefix);
      const w = waiting.get(token);
      if (!w) return; // answered after its deadline: the caller already has a timeout
      waiting.delete(token);
      if (msg.data.length === 0 && msg.headers?.code === 503) {
        w.reject(new errors.RequestError('no stream listens on the subject', { cause: new errors.NoRespondersError(subject) }));
        return;
      }
      try {
        w.resolve(msg.json<PubAck>());
      } catch (e) {
        w.reject(e as Error);
      }
    },
  });

  // Entries are added with a constant timeout on a monotonic clock, so the map's insertion
  // order is deadline order.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [token, w] of waiting) {
      if (w.deadline > now) break;
      waiting.delete(token);
      w.reject(new errors.TimeoutError());
    }
  }, SWEEP_MS);
  sweep.unref();

  function flush(): void {
    flushing = false;
    for (const q of queued.splice(0)) {
      const h = headers();
      h.set('Nats-Msg-Id', q.msgId);
      try {
        nc.publish(subject, q.data, { reply: `${inbox}.${q.token}`, headers: h });
      } catch (err) {
        const w = waiting.get(q.token);
        waiting.delete(q.token);
        w?.reject(err as Error);
      }
    }
  }

  return (data: string, msgId: string): Promise<PubAck> =>
    new Promise<PubAck>((resolve, reject) => {
      counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
      const token = counter.toString(36);
      waiting.set(token, { resolve, reject, deadline: performance.now() + timeoutMs });
      queued.push({ token, data, msgId });
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
    });
}

export function createPublisher(deps: PublisherDeps): Publisher {
  const now = deps.now ?? (() => new Date());
  const send = createStreamPublisher(deps.nc, deps.names.subject, deps.timeoutMs);
  return {
    async publish(payloadJson, idempotencyKey, publisher) {
      const id = newMessageId();
      const receivedAt = now().toISOString();
      const ack = await send(encodeEnvelope(id, receivedAt, payloadJson, publisher), dedupeId(id, idempotencyKey));
      if (ack.error) throw new JetStreamApiError(ack.error);
      if (!ack.stream) throw new JetStreamError('invalid ack response');
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
