import uWS from 'uWebSockets.js';
import { problem, type Logger, type Probes } from '@falcon/shared';
import type { Subscriptions } from './catch-up.js';
import { CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, type FanOut, type Subscriber, type SubscriberSink } from './fan-out.js';
import { registerHttpRoutes, writeProblem, type HttpRoutesDeps } from './http-routes.js';
import { parseSince } from './resume.js';

const TOPIC = 'messages';

export interface GatewayDeps extends Omit<HttpRoutesDeps, 'status'> {
  log: Logger;
  /** Buffered bytes above which a client is disconnected with 1013. */
  maxBackpressure: number;
  idleTimeoutSeconds: number;
}

/** What the gateway serves once it follows the stream. */
export interface GatewayFeed {
  fanOut: FanOut;
  subscriptions: Subscriptions;
  status: () => object | undefined;
}

export interface Gateway {
  listen(port: number, host?: string): Promise<number>;
  /** Starts serving /ws from the stream; until then /ws answers 503 with Retry-After. */
  attach(feed: GatewayFeed): void;
  /** Sends a frame to every WebSocket that joined the live broadcast. */
  broadcast(frame: string): void;
  /** Closes every client with 1001 so it reconnects elsewhere; /ws answers 503 from now on. */
  closeClients(): void;
  /** Stops listening (probes included). */
  close(): void;
}

interface Connection {
  since: number | undefined;
  subscriber: Subscriber | undefined;
}

function webSocketSink(ws: uWS.WebSocket<Connection>, closed: () => boolean): SubscriberSink {
  return {
    send: (frame) => {
      if (!closed()) ws.send(frame, false, false);
    },
    bufferedAmount: () => (closed() ? 0 : ws.getBufferedAmount()),
    close: (code, reason) => {
      if (!closed()) ws.end(code, reason);
    },
    join: () => {
      if (!closed()) ws.subscribe(TOPIC);
    },
  };
}

/** The uWS application: /ws on top of the fan-out and the resume, and the plain HTTP routes. */
export function createGateway(deps: GatewayDeps): Gateway {
  const app = uWS.App();
  let feed: GatewayFeed | undefined;
  let accepting = true;
  let listenSocket: uWS.us_listen_socket | undefined;

  app.ws<Connection>('/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: 4 * 1024,
    idleTimeout: deps.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    // A safety net only: the fan-out closes a client with 1013 before it can get here (a
    // skipped frame would be a gap, so uWS closes rather than skips).
    maxBackpressure: deps.maxBackpressure * 2,
    closeOnBackpressureLimit: 1,
    upgrade: (res, req, context) => {
      const since = parseSince(req.getQuery('since'));
      if (since === 'invalid') {
        writeProblem(res, 400, problem(400, 'invalid-parameter', 'since must be a non-negative integer', [{ path: 'query:since', message: 'must be a non-negative integer' }]));
        return;
      }
      if (!feed || !accepting || deps.probes.isDraining()) {
        const detail = feed ? 'this gateway is shutting down; reconnect' : 'this gateway is starting; retry shortly';
        writeProblem(res, 503, problem(503, 'unavailable', detail), { 'retry-after': '1' });
        return;
      }
      res.upgrade<Connection>(
        { since, subscriber: undefined },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      const connection = ws.getUserData();
      if (!feed) {
        ws.end(CLOSE_TRY_AGAIN_LATER, 'gateway not ready');
        return;
      }
      // Once closed (by uWS' close handler or by the fan-out) the socket is never touched again.
      let subscriber: Subscriber | undefined;
      subscriber = feed.fanOut.add(webSocketSink(ws, () => subscriber?.isClosed() ?? false));
      connection.subscriber = subscriber;
      const opened = subscriber;
      feed.subscriptions.open(opened, connection.since).catch((err: unknown) => {
        deps.log.warn({ err }, 'resume failed; closing the connection');
        opened.sink.close(CLOSE_TRY_AGAIN_LATER, 'resume failed');
        opened.closed();
      });
    },
    drain: (ws) => ws.getUserData().subscriber?.drained(),
    close: (ws) => ws.getUserData().subscriber?.closed(),
  });

  registerHttpRoutes(app, { ...deps, status: () => feed?.status() });

  return {
    listen(port, host = '0.0.0.0') {
      return new Promise((resolve, reject) => {
        app.listen(host, port, (token) => {
          if (!token) return reject(new Error(`cannot listen on ${host}:${port}`));
          listenSocket = token;
          resolve(uWS.us_socket_local_port(token));
        });
      });
    },
    attach(next) {
      feed = next;
    },
    broadcast(frame) {
      app.publish(TOPIC, frame, false, false);
    },
    closeClients() {
      accepting = false;
      feed?.fanOut.closeAll(CLOSE_GOING_AWAY, 'gateway shutting down; reconnect with since');
    },
    close() {
      if (listenSocket) uWS.us_listen_socket_close(listenSocket);
      listenSocket = undefined;
    },
  };
}
