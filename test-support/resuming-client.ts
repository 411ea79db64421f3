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
  close(): void;
}

export function openResumingClient(url: () => string): ResumingClient {
  const state: ResumingClient & { stopped: boolean; last: number | undefined } = {
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
    const since = state.last === undefined ? '' : `?since=${state.last}`;
    const ws = new WebSocket(`${url()}${since}`);
    current = ws;
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string; seq?: number; lastSeq?: number };
      if (frame.type === 'welcome' && state.last === undefined) state.last = frame.lastSeq;
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
