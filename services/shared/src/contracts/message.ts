import { isUuid } from '../platform/uuid.js';

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

/**
 * The deepest JSON nesting any Falcon message may have: ingest's INGEST_MAX_DEPTH cannot go
 * above it, and Postgres refuses JSON nested a few times deeper ("stack depth limit exceeded").
 */
export const MAX_PAYLOAD_DEPTH = 10_000;

/** How deeply JSON text nests, counting brackets outside strings. */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i += 1; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x7d || c === 0x5d) depth -= 1;
  }
  return deepest;
}

function payloadProblem(text: string): string | undefined {
  if (!text.startsWith('{')) return 'the payload is not a JSON object';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'the payload is not a JSON object';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the payload is not a JSON object';
  // Only text this long can nest this deep: short payloads skip the scan.
  if (text.length > 2 * MAX_PAYLOAD_DEPTH && nestingDepth(text) > MAX_PAYLOAD_DEPTH) return `the payload nests deeper than ${MAX_PAYLOAD_DEPTH} levels`;
  return undefined;
}

/**
 * The inverse of encodeEnvelope: the payload stays text (the persister stores it as it is),
 * but everything must be what ingest writes and Postgres takes: a UUID, a real instant, a
 * JSON object no deeper than MAX_PAYLOAD_DEPTH. Throws on anything else, saying what is wrong.
 */
export function splitEnvelope(envelopeJson: string): EnvelopeParts {
  const head = ENVELOPE_HEAD.exec(envelopeJson);
  if (!head || !envelopeJson.endsWith('}')) throw new Error('not a Falcon envelope');
  const [, id, receivedAt, publisherJson] = head as unknown as [string, string, string, string | undefined];
  if (!isUuid(id)) throw new Error('not a Falcon envelope: the id is not a UUID');
  // Date rolls 2026-02-30 over to March: a round trip that changes the text is no real instant.
  const time = new Date(receivedAt);
  if (Number.isNaN(time.getTime()) || time.toISOString() !== receivedAt) throw new Error('not a Falcon envelope: receivedAt is not a real instant');
  const payloadJson = envelopeJson.slice(head[0].length, -1);
  const problem = payloadProblem(payloadJson);
  if (problem) throw new Error(`not a Falcon envelope: ${problem}`);
  const parts: EnvelopeParts = { id, receivedAt, payloadJson };
  if (publisherJson !== undefined) parts.publisher = JSON.parse(publisherJson) as string;
  return parts;
}
