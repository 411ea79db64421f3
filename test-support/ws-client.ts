import WebSocket from 'ws';
import { waitFor } from '../scripts/stack.js';

export interface Frame {
  type: string;
  seq?: number;
  lastSeq?: number;
  recovered?: boolean;
  id?: string;
  receivedAt?: string;
  payload?: unknown;
  [key: string]: unknown;
}

export interface TestClient {
  ws: WebSocket;
  frames: Frame[];
  /** seqs of the message frames, in arrival order. */
  seqs(): number[];
  /** Arrival time (ms, performance.now) of each message frame by seq. */
  arrivals: Map<number, number>;
  closed: Promise<{ code: number; reason: string }>;
  waitForSeq(seq: number, timeoutMs?: number): Promise<void>;
  waitForMessages(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens a WebSocket and records every frame; rejects if the upgrade is refused, with the
 * refusal's status, headers and body.
 */
export async function openClient(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
  const ws = new WebSocket(url, { headers });
  const frames: Frame[] = [];
  const arrivals = new Map<number, number>();
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as Frame;
    frames.push(frame);
    if (frame.type === 'message' && typeof frame.seq === 'number') arrivals.set(frame.seq, performance.now());
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        req.destroy();
        reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body }));
      });
    });
  });
  const seqs = () => frames.filter((f) => f.type === 'message').map((f) => f.seq as number);
  return {
    ws,
    frames,
    arrivals,
    seqs,
    closed,
    waitForSeq: (seq, timeoutMs = 20_000) => waitFor(`frame with seq ${seq}`, () => seqs().includes(seq), timeoutMs, 20),
    waitForMessages: (count, timeoutMs = 20_000) => waitFor(`${count} message frames (have ${seqs().length})`, () => seqs().length >= count, timeoutMs, 20),
    async close() {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
      await closed;
    },
  };
}
