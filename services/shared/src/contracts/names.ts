/**
 * Every subject, stream and consumer name Falcon uses, derived from one namespace so that
 * several installations (or test files) can share a NATS server without seeing each other.
 */
export interface FalconNames {
  readonly namespace: string;
  /** The one ordered log of accepted messages. */
  readonly stream: string;
  /** The subject ingest publishes to; the stream captures only this subject. */
  readonly subject: string;
  /** The durable pull consumer shared by every persister replica. */
  readonly persisterConsumer: string;
  /** Messages the persister gave up on, with the reason in a header. */
  readonly deadLetterStream: string;
  readonly deadLetterSubject: string;
}

export const DEFAULT_NAMESPACE = 'falcon';
const NAMESPACE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

export function isValidNamespace(namespace: string): boolean {
  return NAMESPACE_PATTERN.test(namespace);
}

export function falconNames(namespace: string = DEFAULT_NAMESPACE): FalconNames {
  if (!isValidNamespace(namespace)) {
    throw new Error(`invalid namespace ${JSON.stringify(namespace)}: expected ${NAMESPACE_PATTERN}`);
  }
  const upper = namespace.toUpperCase().replace(/-/g, '_');
  return {
    namespace,
    stream: `${upper}_MESSAGES`,
    subject: `${namespace}.messages`,
    persisterConsumer: `${namespace}-persister`,
    deadLetterStream: `${upper}_DEAD_LETTERS`,
    deadLetterSubject: `${namespace}.dead-letters`,
  };
}
