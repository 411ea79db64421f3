/**
 * The message as it travels: ingest writes an envelope to the stream, the stream assigns
 * `seq`, and every reader turns envelope + seq into its own shape. The envelope is JSON text
 * built once by ingest; readers splice `seq` into it instead of parsing and re-serialising.
 */
export interface Envelope {
  id: string;
  receivedAt: string;
  /** The `sub` of the token the message was posted with; absent without authentication. */
  publisher?: string;
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
export function encodeEnvelope(id: string, receivedAt: string, payloadJson: string, publisher?: string): string {
  const by = publisher === undefined ? '' : `"publisher":${JSON.stringify(publisher)},`;
  return `{"id":"${id}","receivedAt":"${receivedAt}",${by}"payload":${payloadJson}}`;
}

/** Envelope text + seq -> the WebSocket `message` frame (publisher included), without a parse. */
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
  publisher?: string;
  /** The payload's JSON text, exactly as ingest stored it. */
  payloadJson: string;
}

// The publisher, when present, is a JSON string (RFC 8259 section 7) between the head and the payload.
const ENVELOPE_HEAD =
  /^\{"id":"([0-9a-f-]{36})","receivedAt":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)",(?:"publisher":("(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"),)?"payload":/;

/** Whether text has the shape encodeEnvelope produces (head checked, payload not parsed). */
export function isEnvelope(text: string): boolean {
  return ENVELOPE_HEAD.test(text) && text.endsWith('}');
}

/**
 * The inverse of encodeEnvelope without parsing the payload: the persister stores the text as
 * it is and lets Postgres validate it. Throws on anything encodeEnvelope did not produce.
 */
export function splitEnvelope(envelopeJson: string): EnvelopeParts {
  const head = ENVELOPE_HEAD.exec(envelopeJson);
  if (!head || !envelopeJson.endsWith('}')) throw new Error('not a Falcon envelope');
  const parts: EnvelopeParts = { id: head[1]!, receivedAt: head[2]!, payloadJson: envelopeJson.slice(head[0].length, -1) };
  if (head[3] !== undefined) parts.publisher = JSON.parse(head[3]) as string;
  return parts;
}
