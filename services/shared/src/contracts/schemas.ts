/**
 * The JSON Schemas of the public contract (shared/CONTRACT.md), once. The OpenAPI document
 * served by ingest and query is assembled from them.
 */
import { DEFAULT_PORTS } from './ports.js';
const uuid = { type: 'string', format: 'uuid' } as const;
const timestamp = { type: 'string', format: 'date-time', description: 'RFC 3339, UTC, milliseconds' } as const;
const seq = { type: 'integer', minimum: 1, description: 'Position in the stream; strictly increasing in order of receipt' } as const;
const payload = { type: 'object', description: 'The JSON object the client posted, unchanged', additionalProperties: true } as const;
const publisher = { type: 'string', description: "The sub of the token that posted it; absent without authentication" } as const;

export const acceptedSchema = {
  type: 'object',
  required: ['id', 'seq', 'receivedAt', 'duplicate'],
  properties: { id: uuid, seq, receivedAt: timestamp, duplicate: { type: 'boolean' } },
} as const;

export const persistedMessageSchema = {
  type: 'object',
  required: ['id', 'seq', 'receivedAt', 'persistedAt', 'payload'],
  properties: { id: uuid, seq, receivedAt: timestamp, persistedAt: timestamp, publisher, payload },
} as const;

export const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    errors: {
      type: 'array',
      items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } },
    },
  },
} as const;

export const messageFrameSchema = {
  type: 'object',
  required: ['type', 'id', 'seq', 'receivedAt', 'payload'],
  properties: { type: { const: 'message' }, id: uuid, seq, receivedAt: timestamp, publisher, payload },
} as const;

export const welcomeFrameSchema = {
  type: 'object',
  required: ['type', 'lastSeq', 'recovered'],
  properties: { type: { const: 'welcome' }, lastSeq: { type: 'integer', minimum: 0 }, recovered: { type: 'boolean' } },
} as const;

const problemResponse = (description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

// Authentication is off unless configured (then a bearer JWT with the scope is required), so
// each operation accepts either no credentials or the scoped token.
const secured = (scope: string) => ({
  security: [{}, { bearerAuth: [scope] }],
  responses: {
    '401': problemResponse('Missing or invalid token (kind unauthorized), when authentication is on', { 'WWW-Authenticate': { schema: { type: 'string' }, description: 'Bearer' } }),
    '403': problemResponse(`Valid token without the ${scope} scope (kind forbidden)`),
  },
});

const timeBound = (name: string, description: string) => ({
  name,
  in: 'query',
  schema: { type: 'string', format: 'date-time' },
  description: `${description} (RFC 3339; a bound that is not one is a 400)`,
});

const messageList = { type: 'array', items: { $ref: '#/components/schemas/PersistedMessage' } };

/** A realtime endpoint: the HTTP answer before the stream; the stream itself is in the AsyncAPI document. */
const realtimeEndpoint = (summary: string, stream: Record<string, unknown>, headers: Record<string, unknown>[] = []) => {
  const auth = secured('messages:subscribe');
  return {
    get: {
      summary,
      description: 'The events are described in asyncapi.yaml (services/shared/api/) beside this document.',
      parameters: [
        { name: 'since', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'Resume after this seq: every later message the stream still holds, then live' },
        { name: 'access_token', in: 'query', schema: { type: 'string' }, description: 'The bearer token, for browsers that cannot set headers' },
        ...headers,
      ],
      security: auth.security,
      responses: {
        ...stream,
        '400': problemResponse('Bad query parameters'),
        ...auth.responses,
        '503': problemResponse('The gateway is starting or shutting down; retry (another replica)', { 'Retry-After': { schema: { type: 'integer' } } }),
      },
    },
  };
};

/** OpenAPI 3.1 for the HTTP API of ingest and query. */
export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Falcon',
      version,
      description: `Realtime message pipeline. POST to ingest (port ${DEFAULT_PORTS.ingest}), read from query (port ${DEFAULT_PORTS.query}), watch on realtime (port ${DEFAULT_PORTS.realtime}, GET /ws or GET /sse; their events are in asyncapi.yaml).`,
    },
    paths: {
      '/api/messages': {
        post: {
          summary: 'Accept a message (ingest)',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,128}$' },
              description: 'A retry with the same key inside the dedupe window returns the same id and seq with duplicate=true',
            },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: payload } } },
          security: secured('messages:write').security,
          responses: {
            '202': {
              description: 'Durably acknowledged by the stream',
              headers: { Location: { schema: { type: 'string' }, description: '/api/messages/{id}' } },
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Accepted' } } },
            },
            '400': problemResponse('Malformed JSON, not valid UTF-8, not an object, schema violation, or bad Idempotency-Key'),
            '413': problemResponse('Body over the limit (INGEST_MAX_BYTES, 64 KiB by default)'),
            '415': problemResponse('Content-Type is not application/json'),
            ...secured('messages:write').responses,
            '429': problemResponse('Over INGEST_RATE_LIMIT (kind rate-limited); nothing was stored', { 'Retry-After': { schema: { type: 'integer' }, description: 'Seconds to wait' } }),
            '500': problemResponse('The stream refused the message for a reason a retry cannot cure; logged'),
            '503': problemResponse('The stream could not acknowledge in time; retry after Retry-After seconds with the same Idempotency-Key'),
          },
        },
        get: {
          summary: 'List persisted messages (query)',
          description:
            'Without after/limit: every message (in the time range) streamed, by seq. With after and/or limit: one page, with a Link rel="next" header while more rows exist; the link keeps from and to. ' +
            'Accept: application/x-ndjson returns the same rows as newline-delimited JSON; application/json or no Accept keeps the array. ' +
            'Messages older than the retention window (RETENTION_DAYS) are gone whole.',
          parameters: [
            { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'Return messages with seq greater than this' },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
            timeBound('from', 'Messages with receivedAt at or after this instant'),
            timeBound('to', 'Messages with receivedAt before this instant'),
          ],
          security: secured('messages:read').security,
          responses: {
            '200': {
              description: 'Messages ordered by seq ascending',
              headers: { Link: { schema: { type: 'string' }, description: '<...>; rel="next" while more rows exist' } },
              content: {
                'application/json': { schema: messageList },
                'application/x-ndjson': { schema: { $ref: '#/components/schemas/PersistedMessage' }, description: 'One message per line' },
              },
            },
            '400': problemResponse('Bad query parameters, or a from/to that is not an RFC 3339 date-time'),
            '503': problemResponse('The database is unavailable, or (without after/limit) as many full exports as allowed are already streaming; retry after Retry-After seconds or page'),
            ...secured('messages:read').responses,
          },
        },
      },
      '/api/messages/{id}': {
        get: {
          summary: 'One persisted message (query)',
          parameters: [{ name: 'id', in: 'path', required: true, schema: uuid }],
          security: secured('messages:read').security,
          responses: {
            '200': { description: 'The message', content: { 'application/json': { schema: { $ref: '#/components/schemas/PersistedMessage' } } } },
            '400': problemResponse('id is not a UUID'),
            '404': problemResponse('No such message, or it expired (retention)'),
            ...secured('messages:read').responses,
          },
        },
      },
      '/api/dead-letters': {
        get: {
          summary: 'Messages the persister could not store, with the reason (query)',
          parameters: [
            { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0 } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: {
            '200': {
              description: 'Dead letters by seq: { seq, id, receivedAt, failedAt, deliveries, reason, envelope }',
              headers: { Link: { schema: { type: 'string' }, description: '<...>; rel="next" while more rows exist' } },
              content: { 'application/json': { schema: { type: 'array', items: { type: 'object' } } } },
            },
            '400': problemResponse('Bad query parameters'),
            ...secured('messages:read').responses,
          },
          security: secured('messages:read').security,
        },
      },
      '/sse': realtimeEndpoint(
        'Server-Sent Events (realtime)',
        {
          '200': {
            description:
              'text/event-stream: event welcome first, then event message with id {seq}; resume with Last-Event-ID or since. While the gateway starts or shuts down, a client that accepts text/event-stream gets instead an empty stream with retry: 1000 (an EventSource gives up for good on a 503, but reconnects after a stream that ends)',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
        },
        [{ name: 'Last-Event-ID', in: 'header', schema: { type: 'string', pattern: '^[0-9]{1,15}$' }, description: 'Resume after this seq (what an EventSource sends when it reconnects); wins over since' }],
      ),
      '/ws': realtimeEndpoint('WebSocket (realtime)', { '101': { description: 'Switching to the WebSocket: the welcome frame first, then message frames' } }),
    },
    components: {
      schemas: { Accepted: acceptedSchema, PersistedMessage: persistedMessageSchema, Problem: problemSchema },
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Scopes in the scope claim: messages:write, messages:read, messages:subscribe' },
      },
    },
  };
}
