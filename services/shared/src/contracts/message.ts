/**
 * The message as it travels: ingest writes an envelope to the stream, the stream assigns
 * `seq`, and every reader turns envelope + seq into its own shape. The envelope is JSON text
 * built once by ingest; readers splice `seq` into it instead of parsing and re-serialising.
 */
export interface Envelope {
  id: string;
  receivedAt: string;
  payload: Record<string, unknown>;
}

export interface Message extends Envelope {
  seq: number;
}

export interface PersistedMessage extends Message {
  persistedAt: string;
}

export interface MessageFrame extends Message {
  type: 'message';
}

export interface WelcomeFrame {
  type: 'welcome';
  lastSeq: number;
  recovered: boolean;
}

export interface AcceptedResponse {
  id: string;
  seq: number;
  receivedAt: string;
  duplicate: boolean;
}

/**
 * Builds the envelope text. `payloadJson` is the client's JSON object text exactly as received
 * (already validated), so the stored and pushed payload is the client's own bytes.
 */
export function encodeEnvelope(id: string, receivedAt: string, payloadJson: string): string {
  return `{"id":"${id}","receivedAt":"${receivedAt}","payload":${payloadJson}}`;
}

/** Envelope text + seq -> the WebSocket `message` frame, without a parse. */
export function messageFrame(seq: number, envelopeJson: string): string {
  return `{"type":"message","seq":${seq},${envelopeJson.slice(1)}`;
}

export function welcomeFrame(lastSeq: number, recovered: boolean): string {
  const frame: WelcomeFrame = { type: 'welcome', lastSeq, recovered };
  return JSON.stringify(frame);
}

export function decodeEnvelope(envelopeJson: string): Envelope {
  const value = JSON.parse(envelopeJson) as Envelope;
  if (typeof value?.id !== 'string' || typeof value.receivedAt !== 'string' || typeof value.payload !== 'object') {
    throw new Error('not a Falcon envelope');
  }
  return value;
}

export interface EnvelopeParts {
  id: string;
  receivedAt: string;
  /** The payload's JSON text, exactly as ingest stored it. */
  payloadJson: string;
}

const ENVELOPE_HEAD = /^\{"id":"([0-9a-f-]{36})","receivedAt":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)","payload":/;

/**
 * Whether a stream message is one the pipeline carries: the persister stores exactly these and
 * the gateway pushes exactly these (a foreign publisher's message that is not is dead-lettered
 * by one and skipped by the other).
 */
export function isEnvelope(text: string): boolean {
  try {
    splitEnvelope(text);
    return true;
  } catch {
    return false;
  }
}

function isJsonObjectText(text: string): boolean {
  if (!text.startsWith('{')) return false;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/**
 * The inverse of encodeEnvelope: the payload stays text (the persister stores it as it is),
 * but it must be a JSON object, as ingest only ever writes. Throws on anything encodeEnvelope
 * did not produce, with what is wrong.
 */
export function splitEnvelope(envelopeJson: string): EnvelopeParts {
  const head = ENVELOPE_HEAD.exec(envelopeJson);
  if (!head || !envelopeJson.endsWith('}')) throw new Error('not a Falcon envelope');
  const payloadJson = envelopeJson.slice(head[0].length, -1);
  if (!isJsonObjectText(payloadJson)) throw new Error('not a Falcon envelope: the payload is not a JSON object');
  return { id: head[1]!, receivedAt: head[2]!, payloadJson };
}
