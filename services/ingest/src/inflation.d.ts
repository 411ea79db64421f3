// inflation ships no types; this is the one call ingest makes.
declare module 'inflation' {
  import type { IncomingMessage } from 'node:http';
  import type { Readable } from 'node:stream';
  /** The request itself for identity, else a decompressing stream; throws (status 415) on an unknown Content-Encoding. */
  export default function inflate(stream: IncomingMessage, options?: { encoding?: string }): Readable;
}
