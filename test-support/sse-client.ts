/**
 * A Server-Sent Events client for tests, reading the stream as the WHATWG HTML standard's
 * "event stream interpretation" says (fields, comments, multi-line data, the last event id),
 * over plain node:http so a test can stall the socket. `openResumingSse` reconnects as an
 * EventSource does, sending Last-Event-ID.
 */
import http, { type IncomingMessage } from 'node:http';
import { waitFor } from '../scripts/stack.js';
import type { Frame } from './ws-client.js';

export interface SseEvent {
  type: string;
  /** The last event id when the event was dispatched ('' before any). */
  id: string;
  data: string;
}

/** The event-stream parser: feed it text as it arrives, in any pieces. */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private type = '';
  comments = 0;
  retryMs: number | undefined;

  constructor(
    private readonly dispatch: (event: SseEvent) => void,
    public lastEventId = '',
  ) {}

  push(text: string): void {
    this.buffer += text;
    for (;;) {
      const end = this.buffer.search(/[\r\n]/);
      if (end === -1) return;
      // A CR at the very end may be the first half of a CRLF.
      if (this.buffer[end] === '\r' && end === this.buffer.length - 1) return;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + (this.buffer.startsWith('\r\n', end) ? 2 : 1));
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.dispatch({ type: this.type || 'message', id: this.lastEventId, data: this.data.join('\n') });
      this.data = [];
      this.type = '';
      return;
    }
    if (line.startsWith(':')) {
      this.comments += 1;
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
  }
}

export interface SseClient {
  res: IncomingMessage;
  events: SseEvent[];
  parser: SseParser;
  /** The data of every event, parsed (welcome and message frames). */
  frames(): Frame[];
  /** seqs of the message events, in arrival order. */
  seqs(): number[];
  /** Resolves when the server ends the stream or the connection drops. */
  ended: Promise<void>;
  waitForSeq(seq: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface SseRefusal extends Error {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Opens a stream and records every event; rejects with the HTTP answer unless it is 200. */
export function openSse(url: string, headers: Record<string, string> = {}, lastEventId = ''): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    // Its own connection (no agent): closing the client closes the socket the gateway sees.
    const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => reject(Object.assign(new Error(`stream refused: ${res.statusCode}`), { status: res.statusCode ?? 0, headers: res.headers, body })));
        return;
      }
      const events: SseEvent[] = [];
      const parser = new SseParser((event) => events.push(event), lastEventId);
      res.on('data', (chunk: string) => parser.push(chunk));
      const ended = new Promise<void>((done) => {
        res.once('close', done);
        res.once('error', () => done());
      });
      const frames = () => events.map((e) => JSON.parse(e.data) as Frame);
      const seqs = () => events.filter((e) => e.type === 'message').map((e) => (JSON.parse(e.data) as Frame).seq as number);
      resolve({
        res,
        events,
        parser,
        frames,
        seqs,
        ended,
        waitForSeq: (seq, timeoutMs = 20_000) => waitFor(`event with seq ${seq}`, () => seqs().includes(seq), timeoutMs, 20),
        async close() {
          req.destroy();
          await ended;
        },
      });
    });
    req.once('error', reject);
  });
}

export interface ResumingSseClient {
  seqs: number[];
  welcomes: Frame[];
  /** Streams opened after the first. */
  reconnects: number;
  lastEventId(): string;
  /** Resolves on the first welcome. */
  ready: Promise<void>;
  /** Set when the gateway refused for good (401/403), as an EventSource then gives up. */
  failedWith: number | undefined;
  close(): void;
}

/**
 * Behaves as a browser's EventSource: when the stream ends or the connection fails it
 * reconnects after the retry delay, sending the last event id as Last-Event-ID. It also
 * retries a 503 (a gateway starting or draining), which an EventSource would not.
 */
export function openResumingSse(url: () => string, headers: Record<string, string> = {}, retryMs = 200): ResumingSseClient {
  let welcomed: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    welcomed = resolve;
  });
  let lastEventId = '';
  let stopped = false;
  let current: SseClient | undefined;
  const state: ResumingSseClient = {
    seqs: [],
    welcomes: [],
    reconnects: 0,
    ready,
    failedWith: undefined,
    lastEventId: () => lastEventId,
    close: () => {
      stopped = true;
      void current?.close();
    },
  };
  let seen = 0;
  const again = () => {
    if (stopped) return;
    state.reconnects += 1;
    setTimeout(connect, retryMs);
  };
  function connect(): void {
    if (stopped) return;
    openSse(url(), lastEventId ? { ...headers, 'last-event-id': lastEventId } : headers, lastEventId).then(
      (client) => {
        current = client;
        seen = 0;
        const take = () => {
          for (; seen < client.events.length; seen++) {
            const event = client.events[seen]!;
            const frame = JSON.parse(event.data) as Frame;
            if (event.type === 'welcome') {
              state.welcomes.push(frame);
              welcomed();
            } else if (event.type === 'message') state.seqs.push(frame.seq as number);
            lastEventId = event.id;
          }
        };
        client.res.on('data', take);
        void client.ended.then(() => {
          take();
          if (stopped) return;
          again();
        });
      },
      (err: SseRefusal | NodeJS.ErrnoException) => {
        const status = (err as SseRefusal).status;
        if (status === 401 || status === 403) {
          state.failedWith = status;
          return;
        }
        again();
      },
    );
  }
  connect();
  return state;
}
