import uWS from 'uWebSockets.js';
import {
  isEnvelope,
  messageFrame,
  problem,
  PROBLEM_CONTENT_TYPE,
  welcomeFrame,
  type Counter,
  type Gauge,
  type Logger,
  type Probes,
} from '@falcon/shared';
import { FrameHistory } from './history.js';
import { parseSince, planResume } from './resume.js';
import type { StaticFile } from './static-files.js';

const TOPIC = 'messages';
/** Close codes: RFC 6455 section 7.4.1 and the IANA registry. */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_TRY_AGAIN_LATER = 1013;

export interface GatewayMetrics {
  clients: Gauge;
  frames: Counter;
  slowDisconnects: Counter;
  resumes: Counter<'source'>;
}

/** Replays stream messages [fromSeq, toSeq] in order; resolves with the last seq delivered. */
export type Replay = (fromSeq: number, toSeq: number, deliver: (seq: number, frame: string) => Promise<boolean>) => Promise<number>;

export interface StreamBounds {
  /** Oldest seq the stream holds, as last seen (it only grows). */
  cachedFirstSeq(): number;
  /** Asks the stream now. */
  freshFirstSeq(): Promise<number>;
  /** The pipeline's counters as last read from JetStream, for the page. */
  status(): object | undefined;
}

export interface GatewayDeps {
  log: Logger;
  probes: Probes;
  metrics: GatewayMetrics;
  replay: Replay;
  bounds: StreamBounds;
  files: Map<string, StaticFile>;
  /** The page's runtime configuration (ingest URL), given the request's Host header. */
  pageConfig: (host: string) => Record<string, unknown>;
  /** Start-up position: the stream's last seq when the live feed began. */
  startSeq: number;
  historySize: number;
  historyMaxBytes: number;
  /** Buffered bytes above which a client is disconnected with 1013. */
  maxBackpressure: number;
  idleTimeoutSeconds: number;
}

interface Client {
  since: number | undefined;
  closed: boolean;
  drained: (() => void) | undefined;
}

export interface Gateway {
  /** Feeds one stream message (envelope text) to every live client. */
  push(seq: number, envelope: string): void;
  lastSeq(): number;
  clientCount(): number;
  listen(port: number, host?: string): Promise<number>;
  /** Stops accepting, closes every client with 1001 so it reconnects elsewhere. */
  close(): void;
}

function writeProblem(res: uWS.HttpResponse, status: number, body: ReturnType<typeof problem>): void {
  res.cork(() => {
    res.writeStatus(`${status} ${body.title}`).writeHeader('content-type', PROBLEM_CONTENT_TYPE).end(JSON.stringify(body));
  });
}

export function createGateway(deps: GatewayDeps): Gateway {
  const app = uWS.App();
  const history = new FrameHistory(deps.historySize, deps.historyMaxBytes);
  const sockets = new Set<uWS.WebSocket<Client>>();
  let lastSeq = deps.startSeq;
  let listenSocket: uWS.us_listen_socket | undefined;

  const send = (ws: uWS.WebSocket<Client>, frame: string): void => {
    if (!ws.getUserData().closed) ws.send(frame, false, false);
  };

  const goLive = (ws: uWS.WebSocket<Client>, frames: string[]): void => {
    // Frames and subscription in one synchronous step: nothing can be published in between,
    // so the hand-over from history to live has no gap and no duplicate.
    ws.cork(() => {
      for (const frame of frames) ws.send(frame, false, false);
      ws.subscribe(TOPIC);
    });
  };

  const waitForDrain = (ws: uWS.WebSocket<Client>): Promise<void> =>
    new Promise((resolve) => {
      ws.getUserData().drained = resolve;
    });

  /** Serves a resume older than the in-memory history from the stream, then goes live. */
  async function catchUp(ws: uWS.WebSocket<Client>, fromSeq: number): Promise<void> {
    const client = ws.getUserData();
    let next = fromSeq;
    for (;;) {
      const target = lastSeq;
      if (next <= target) {
        const reached = await deps.replay(next, target, async (_seq, frame) => {
          if (client.closed) return false;
          send(ws, frame);
          if (ws.getBufferedAmount() > deps.maxBackpressure / 2) await waitForDrain(ws);
          return !client.closed;
        });
        next = reached + 1;
      }
      if (client.closed) return;
      // Whatever arrived during the replay is in memory unless the replay took so long that
      // the history wrapped; then replay again from where this one ended.
      const rest = history.after(next - 1, lastSeq);
      if (rest) {
        goLive(ws, rest);
        return;
      }
    }
  }

  async function open(ws: uWS.WebSocket<Client>): Promise<void> {
    const client = ws.getUserData();
    sockets.add(ws);
    deps.metrics.clients.set(sockets.size);
    const plan = planResume(client.since, {
      lastSeq,
      streamFirstSeq: deps.bounds.cachedFirstSeq(),
      fromMemory: (since) => history.after(since, lastSeq),
    });
    if (plan.kind === 'live') {
      send(ws, welcomeFrame(lastSeq, plan.recovered));
      goLive(ws, []);
      return;
    }
    if (plan.kind === 'memory') {
      deps.metrics.resumes.inc({ source: 'memory' });
      send(ws, welcomeFrame(lastSeq, true));
      goLive(ws, plan.frames);
      return;
    }
    // Older than memory: confirm the stream still holds since + 1 before promising recovery.
    const welcomeSeq = lastSeq;
    const firstSeq = await deps.bounds.freshFirstSeq();
    if (client.closed) return;
    if (plan.fromSeq < firstSeq) {
      send(ws, welcomeFrame(welcomeSeq, false));
      goLive(ws, []);
      return;
    }
    deps.metrics.resumes.inc({ source: 'stream' });
    send(ws, welcomeFrame(welcomeSeq, true));
    await catchUp(ws, plan.fromSeq);
  }

  app.ws<Client>('/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: 4 * 1024,
    idleTimeout: deps.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    // The hard stop: a socket that passes twice the soft limit before the sweep sees it is
    // closed by uWS itself rather than silently skipped (a skipped frame would be a gap).
    maxBackpressure: deps.maxBackpressure * 2,
    closeOnBackpressureLimit: 1,
    upgrade: (res, req, context) => {
      const since = parseSince(req.getQuery('since'));
      if (since === 'invalid') {
        writeProblem(res, 400, problem(400, 'invalid-parameter', 'since must be a non-negative integer', [{ path: 'query:since', message: 'must be a non-negative integer' }]));
        return;
      }
      if (deps.probes.isDraining()) {
        writeProblem(res, 503, problem(503, 'unavailable', 'this gateway is shutting down; reconnect'));
        return;
      }
      res.upgrade<Client>(
        { since, closed: false, drained: undefined },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      open(ws).catch((err: unknown) => {
        deps.log.warn({ err }, 'resume failed; closing the connection');
        if (!ws.getUserData().closed) ws.end(CLOSE_TRY_AGAIN_LATER, 'resume failed');
      });
    },
    drain: (ws) => {
      const client = ws.getUserData();
      if (client.drained && ws.getBufferedAmount() < deps.maxBackpressure / 2) {
        const resolve = client.drained;
        client.drained = undefined;
        resolve();
      }
    },
    close: (ws) => {
      const client = ws.getUserData();
      client.closed = true;
      client.drained?.();
      sockets.delete(ws);
      deps.metrics.clients.set(sockets.size);
    },
  });

  // Slow clients: checked every 100 ms rather than per frame, which keeps publish O(1) per
  // message; uWS's own hard limit (above) covers what a sweep interval could let through.
  const sweep = setInterval(() => {
    for (const ws of sockets) {
      if (ws.getBufferedAmount() > deps.maxBackpressure) {
        deps.metrics.slowDisconnects.inc();
        deps.log.info({ buffered: ws.getBufferedAmount() }, 'slow client disconnected');
        ws.end(CLOSE_TRY_AGAIN_LATER, 'too slow; reconnect with since');
      }
    }
  }, 100);
  sweep.unref();

  app.get('/config.json', (res, req) => {
    const body = JSON.stringify(deps.pageConfig(req.getHeader('host')));
    res.cork(() => {
      res.writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(body);
    });
  });

  app.get('/status.json', (res) => {
    const body = JSON.stringify({ ...deps.bounds.status(), clients: sockets.size, gatewayLastSeq: lastSeq });
    res.cork(() => {
      res.writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(body);
    });
  });

  app.get('/*', (res, req) => {
    const path = req.getUrl();
    const file = deps.files.get(path);
    if (file) {
      res.cork(() => {
        res.writeHeader('content-type', file.contentType).writeHeader('cache-control', 'no-cache').end(file.body);
      });
      return;
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    deps.probes.handle(path).then(
      (answer) => {
        if (aborted) return;
        if (!answer) {
          writeProblem(res, 404, problem(404, 'not-found', `no route for GET ${path}`));
          return;
        }
        res.cork(() => {
          res.writeStatus(String(answer.status)).writeHeader('content-type', answer.contentType).end(answer.body);
        });
      },
      () => {
        if (!aborted) writeProblem(res, 500, problem(500, 'internal', 'probe failed'));
      },
    );
  });

  app.any('/*', (res, req) => {
    writeProblem(res, 405, problem(405, 'method-not-allowed', `${req.getMethod().toUpperCase()} is not allowed here`));
  });

  return {
    push(seq, envelope) {
      if (seq <= lastSeq) return;
      if (!isEnvelope(envelope)) {
        // Not written by ingest (a foreign publisher): browsers get only contract frames.
        lastSeq = seq;
        deps.log.warn({ seq }, 'skipped a stream message that is not a Falcon envelope');
        return;
      }
      const frame = messageFrame(seq, envelope);
      history.push(seq, frame);
      lastSeq = seq;
      app.publish(TOPIC, frame, false, false);
      deps.metrics.frames.inc();
    },
    lastSeq: () => lastSeq,
    clientCount: () => sockets.size,
    listen(port, host = '0.0.0.0') {
      return new Promise((resolve, reject) => {
        app.listen(host, port, (token) => {
          if (!token) return reject(new Error(`cannot listen on ${host}:${port}`));
          listenSocket = token;
          resolve(uWS.us_socket_local_port(token));
        });
      });
    },
    close() {
      clearInterval(sweep);
      if (listenSocket) uWS.us_listen_socket_close(listenSocket);
      listenSocket = undefined;
      for (const ws of [...sockets]) ws.end(CLOSE_GOING_AWAY, 'gateway shutting down; reconnect with since');
    },
  };
}
