import { v7 } from 'uuid';

/** UUID version 7: time-ordered, so message ids sort by the time ingest accepted them. */
export function newMessageId(): string {
  return v7();
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Any RFC 9562 UUID in its canonical text form. */
export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}
