/// <reference path="./inflation.d.ts" />
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { parse as parseJson } from '@hapi/bourne';
import inflate from 'inflation';
import getRawBody from 'raw-body';
import { problemError } from '@falcon/shared';

export interface JsonBody {
  /** The client's text exactly as sent (a leading byte order mark aside). */
  text: string;
  /** Its parsed value: any JSON value, so that a non-object gets its own clear answer. */
  value: unknown;
}

/**
 * Decodes as the contract says (RFC 8259 section 8.1: JSON is UTF-8). `fatal` makes an invalid
 * byte sequence an error instead of U+FFFD, so such a body is refused, never stored altered.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The bytes of a request body, decompressed when it has a Content-Encoding, up to `limit`. */
async function readBytes(req: IncomingMessage, limit: number): Promise<Buffer> {
  let source: Readable;
  try {
    source = inflate(req);
  } catch (err) {
    throw problemError(415, 'unsupported-media-type', (err as Error).message);
  }
  const length = req.headers['content-length'];
  const identity = (req.headers['content-encoding'] ?? 'identity') === 'identity';
  try {
    return await getRawBody(source, { limit, length: identity ? length : undefined });
  } catch (err) {
    if ((err as { status?: number }).status === 413) throw problemError(413, 'body-too-large', `body is over the limit of ${limit} bytes`);
    throw problemError(400, 'invalid-body', `body could not be read: ${(err as Error).message}`);
  }
}

/** Reads, decodes and parses a JSON request body; every way it can be wrong is a 4xx problem. */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<JsonBody> {
  const bytes = await readBytes(req, limit);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw problemError(400, 'invalid-encoding', 'body is not valid UTF-8', [{ path: '', message: 'must be encoded as UTF-8' }]);
  }
  if (text.trim() === '') throw problemError(400, 'invalid-json', 'body is empty; expected a JSON object');
  try {
    // bourne refuses "__proto__" keys, which would otherwise reach the schema validator.
    return { text, value: parseJson(text, { protoAction: 'error' }) as unknown };
  } catch (err) {
    throw problemError(400, 'invalid-json', `body is not valid JSON: ${(err as Error).message}`);
  }
}
