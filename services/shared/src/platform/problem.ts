/**
 * RFC 9457 problem details. Every error a client sees is one of these, built in one place so
 * type URIs and titles stay consistent across services.
 */
export interface FieldError {
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Problem types are stable identifiers, documented in the README. */
export type ProblemKind =
  | 'invalid-json'
  | 'invalid-encoding'
  | 'invalid-body'
  | 'validation'
  | 'invalid-idempotency-key'
  | 'body-too-large'
  | 'unsupported-media-type'
  | 'invalid-parameter'
  | 'not-found'
  | 'method-not-allowed'
  | 'request-timeout'
  | 'unauthorized'
  | 'forbidden'
  | 'rate-limited'
  | 'unavailable'
  | 'internal';

export function problem(status: number, kind: ProblemKind, detail: string, errors?: FieldError[]): Problem {
  const body: Problem = {
    type: `https://falcon.dev/problems/${kind}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
  };
  if (errors) body.errors = errors;
  return body;
}

/** Thrown inside handlers; the top-level mapper turns it into the response. */
export class ProblemError extends Error {
  constructor(
    readonly problem: Problem,
    readonly headers: Record<string, string> = {},
  ) {
    super(problem.detail);
    this.name = 'ProblemError';
  }
}

export function problemError(status: number, kind: ProblemKind, detail: string, errors?: FieldError[], headers?: Record<string, string>): ProblemError {
  return new ProblemError(problem(status, kind, detail, errors), headers);
}
