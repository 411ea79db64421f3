/**
 * The JSON Schemas of the public contract (shared/CONTRACT.md), once. The OpenAPI document
 * served by ingest and query is assembled from them.
 */
const uuid = { type: 'string', format: 'uuid' } as const;
const timestamp = { type: 'string', format: 'date-time', description: 'RFC 3339, UTC, milliseconds' } as const;
const seq = { type: 'integer', minimum: 1, description: 'Position in the stream; strictly increasing in order of receipt' } as const;
const payload = { type: 'object', description: 'The JSON object the client posted, unchanged', additionalProperties: true } as const;
const publisher = { type: 'string', description: "The sub of the token it was posted with; absent when posted without authentication" } as const;

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

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

// When auth is configured (AUTH_JWT_SECRET or AUTH_JWKS_URL): a bearer JWT holding the scope.
const authResponses = {
  '401': problemResponse('Missing or invalid bearer token (when auth is configured); WWW-Authenticate: Bearer'),
  '403': problemResponse('The token lacks the scope this operation needs'),
};
const needs = (scope: string) => [{}, { bearer: [scope] }];

/** OpenAPI 3.1 for the HTTP API of ingest and query. */
export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Falcon',
      version,
      description: 'Realtime message pipeline. POST to ingest (port 8081), read from query (port 8082), watch on realtime (port 8080, GET /ws).',
    },
    paths: {
      '/api/messages': {
        post: {
          summary: 'Accept a message (ingest)',
          security: needs('messages:write'),
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
          responses: {
            '202': {
              description: 'Durably acknowledged by the stream',
              headers: { Location: { schema: { type: 'string' }, description: '/api/messages/{id}' } },
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Accepted' } } },
            },
            '400': problemResponse('Malformed JSON, not an object, schema violation, or bad Idempotency-Key'),
            '413': problemResponse('Body over the limit (INGEST_MAX_BYTES, 64 KiB by default)'),
            '415': problemResponse('Content-Type is not application/json'),
            ...authResponses,
            '429': problemResponse('Over INGEST_RATE_LIMIT for this token sub or client address; retry after Retry-After seconds (RateLimit and RateLimit-Policy headers say more)'),
            '503': problemResponse('The stream could not acknowledge in time; retry after Retry-After seconds with the same Idempotency-Key'),
          },
        },
        get: {
          summary: 'List persisted messages (query)',
          security: needs('messages:read'),
          description: 'Without parameters: every message as one streamed JSON array, by seq. With after and/or limit: one page, with a Link rel="next" header while more rows exist.',
          parameters: [
            { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'Return messages with seq greater than this' },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: {
            '200': {
              description: 'Messages ordered by seq ascending',
              headers: { Link: { schema: { type: 'string' }, description: '<...>; rel="next" while more rows exist' } },
              content: { 'application/json': { schema: { type: 'array', items: { $ref: '#/components/schemas/PersistedMessage' } } } },
            },
            '400': problemResponse('Bad query parameters'),
            ...authResponses,
          },
        },
      },
      '/api/messages/{id}': {
        get: {
          summary: 'One persisted message (query)',
          security: needs('messages:read'),
          parameters: [{ name: 'id', in: 'path', required: true, schema: uuid }],
          responses: {
            '200': { description: 'The message', content: { 'application/json': { schema: { $ref: '#/components/schemas/PersistedMessage' } } } },
            '400': problemResponse('id is not a UUID'),
            '404': problemResponse('No such message'),
            ...authResponses,
          },
        },
      },
      '/api/dead-letters': {
        get: {
          summary: 'Messages the persister could not store, with the reason (query)',
          security: needs('messages:read'),
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
            ...authResponses,
          },
        },
      },
    },
    components: {
      schemas: { Accepted: acceptedSchema, PersistedMessage: persistedMessageSchema, Problem: problemSchema },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT (HS256 with AUTH_JWT_SECRET, or RS256/ES256 from AUTH_JWKS_URL) whose space-separated scope claim holds the scope' } },
    },
  };
}
