import type uWS from 'uWebSockets.js';
import { CLOSE_TRY_AGAIN_LATER, type SubscriberSink } from './fan-out.js';

/**
 * Server-Sent Events (WHATWG HTML, "Server-sent events"): one event is its fields, one per line,
 * ended by a blank line. A frame's JSON may hold line breaks (a client's payload is stored as
 * sent, whitespace included); the format carries them as one `data:` line each, which the
 * client joins with "\n" again: the same JSON.
 */
function dataLines(frame: string): string {
  return /[\r\n]/.test(frame) ? frame.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join('') : `data: ${frame}\n`;
}

/** `id`/`event`/`data` text of one message, encoded once for all the streams it goes to. */
export function createSseEncoder(): (frame: string, seq: number) => string {
  let lastFrame: string | undefined;
  let lastText = '';
  return (frame, seq) => {
    // The fan-out sends one frame to every stream in turn: one entry is the whole cache.
    if (frame !== lastFrame) {
      lastFrame = frame;
      lastText = `id: ${seq}\nevent: message\n${dataLines(frame)}\n`;
    }
    return lastText;
  };
}

/**
 * The welcome event. Its id is where the stream continues from, so that an EventSource that
 * reconnects before any message still sends a Last-Event-ID with no gap behind it: `since` while
 * a resume is being caught up, the welcome's lastSeq when the stream starts live.
 */
export function welcomeEvent(frame: string, since: number | undefined): string {
  const welcome = JSON.parse(frame) as { lastSeq: number; recovered: boolean };
  const id = welcome.recovered && since !== undefined ? since : welcome.lastSeq;
  return `id: ${id}\nevent: welcome\n${dataLines(frame)}\n`;
}

export const SSE_HEADERS: Record<string, string> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  // nginx (and the ingress controllers built on it) would otherwise buffer the stream.
  'x-accel-buffering': 'no',
  'x-content-type-options': 'nosniff',
};

/**
 * The answer to an event-stream client while the gateway starts or shuts down: an empty stream
 * asking to reconnect in a second. An EventSource gives up for good on any status but 200
 * (a 503 included), while it reconnects after a stream that ends (WHATWG HTML, "Server-sent
 * events", the reconnection time).
 */
export function endWithRetry(res: uWS.HttpResponse, retryMs: number): void {
  res.cork(() => {
    res.writeStatus('200 OK');
    for (const [name, value] of Object.entries(SSE_HEADERS)) res.writeHeader(name, value);
    res.end(`retry: ${retryMs}\n\n`);
  });
}

/** Largest piece written to uWS at once when catching up a backlog after a drain. */
const FLUSH_PIECE = 64 * 1024;

export interface SseStream {
  sink: SubscriberSink;
  /** Writes a comment, which keeps proxies from closing an idle stream; skipped while events wait. */
  heartbeat(): void;
}

export interface SseStreamHooks {
  /** The stream has room again. */
  drained(): void;
  /** The stream is over, whoever ended it (the client, the fan-out, the gateway). */
  ended(): void;
}

/**
 * One /sse response as a SubscriberSink, started with the event-stream headers.
 *
 * uWS buffers whatever the socket does not take and tells nothing of how much (an HTTP response
 * has no getBufferedAmount, and getWriteOffset counts only Content-Length bodies). So events go
 * to uWS only while it has nothing buffered; once a write reports backpressure, events wait
 * here, where they are counted for the slow-client rule, until uWS reports the socket writable.
 * uWS then holds at most about one piece, and `bufferedAmount()` is what waits here.
 *
 * Once the client is gone (onAborted) or the response is ended, `res` is never touched again:
 * uWS aborts the process on any use of a finished response.
 */
export function startSseStream(res: uWS.HttpResponse, encode: (frame: string, seq: number) => string, since: number | undefined, hooks: SseStreamHooks): SseStream {
  let done = false;
  let blocked = false;
  const waiting: string[] = [];
  let waitingBytes = 0;

  const finish = () => {
    if (done) return;
    done = true;
    waiting.length = 0;
    waitingBytes = 0;
    hooks.ended();
  };

  const write = (text: string) => {
    if (done) return;
    if (blocked) {
      waiting.push(text);
      waitingBytes += text.length;
      return;
    }
    res.cork(() => {
      blocked = !res.write(text);
    });
  };

  /** Hands what waits to uWS, piece by piece, until it reports backpressure again. */
  const flush = () => {
    res.cork(() => {
      // An empty cork still makes uWS try its own buffer again.
      let ok = true;
      let taken = 0;
      while (ok && taken < waiting.length) {
        let piece = '';
        while (taken < waiting.length && piece.length < FLUSH_PIECE) piece += waiting[taken++]!;
        waitingBytes -= piece.length;
        ok = res.write(piece);
      }
      waiting.splice(0, taken);
      blocked = !ok;
    });
  };

  res.onAborted(finish);
  // uWS does not drain its own buffer when a response has a writable handler: flush() does.
  res.onWritable(() => {
    if (done) return true;
    flush();
    hooks.drained();
    return true;
  });
  res.cork(() => {
    res.writeStatus('200 OK');
    for (const [name, value] of Object.entries(SSE_HEADERS)) res.writeHeader(name, value);
    // Sends the headers now, so the client sees the stream open before the first event.
    blocked = !res.write(': falcon\n\n');
  });

  const sink: SubscriberSink = {
    send: (frame, seq) => write(seq === undefined ? welcomeEvent(frame, since) : encode(frame, seq)),
    bufferedAmount: () => waitingBytes,
    close: (code) => {
      if (done) return;
      const slow = code === CLOSE_TRY_AGAIN_LATER;
      finish();
      // A slow client is cut off at once (what waits is dropped: it resumes with Last-Event-ID);
      // otherwise the stream ends properly and the EventSource reconnects by itself.
      if (slow) res.close();
      else res.cork(() => res.end());
    },
  };
  return {
    sink,
    heartbeat() {
      if (!done && !blocked) write(':\n\n');
    },
  };
}
