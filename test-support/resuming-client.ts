import WebSocket from 'ws';

/**
 * A WebSocket client that behaves as the contract asks: on any close it reconnects with
 * since = the last seq it saw. It records every message seq, so a test can check nothing was
 * missed and nothing came twice across reconnects.
 */
export interface ResumingClient {
  seqs: number[];
  reconnects: number;
  closeCodes: number[];
  lastSeq(): number | undefined;
  /** Resolves on the first welcome: from then on the client misses nothing. */
  ready: Promise<void>;
  close(): void;
}

export function openResumingClient(url: () => string): ResumingClient {
  let welcomed: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    welcomed = resolve;
  });
  const state: ResumingClient & { stopped: boolean; last: number | undefined } = {
    ready,
    seqs: [],
    reconnects: 0,
    closeCodes: [],
    stopped: false,
    last: undefined,
    lastSeq: () => state.last,
    close: () => {
      state.stopped = true;
      current?.close();
    },
  };
  let current: WebSocket | undefined;
  const connect = () => {
    // The URL may carry a query already (an access_token).
    const target = new URL(url());
    if (state.last !== undefined) target.searchParams.set('since', String(state.last));
    const ws = new WebSocket(target);
    current = ws;
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string; seq?: number; lastSeq?: number };
      if (frame.type === 'welcome') {
        if (state.last === undefined) state.last = frame.lastSeq;
        welcomed();
      }
      if (frame.type === 'message' && frame.seq !== undefined) {
        state.seqs.push(frame.seq);
        state.last = frame.seq;
      }
    });
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      state.closeCodes.push(code);
      if (state.stopped) return;
      state.reconnects += 1;
      setTimeout(connect, 200);
    });
  };
  connect();
  return state;
}
