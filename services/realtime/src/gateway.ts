import uWS from 'uWebSockets.js';
import { problem, type Authenticator, type Logger, type Principal } from '@falcon/shared';
import { admitSubscriber, atExpiry, readCredentials } from './access.js';
import type { Subscriptions } from './catch-up.js';
import { CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER, type FanOut, type Subscriber, type SubscriberSink } from './fan-out.js';
import { registerHttpRoutes, writeProblem, type HttpRoutesDeps } from './http-routes.js';
import { parseSince } from './resume.js';
import { createSseEncoder, endWithRetry, startSseStream, type SseStream } from './sse.js';

const TOPIC = 'messages';

export interface GatewayDeps extends Omit<HttpRoutesDeps, 'status'> {
  log: Logger;
  /** Buffered bytes above which a client is disconnected with 1013. */
  maxBackpressure: number;
  idleTimeoutSeconds: number;
  /** Who may open /ws and /sse; `enabled: false` lets everyone. */
  auth: Authenticator;
  /** Interval of the comments that keep an idle /sse stream open through proxies. */
  sseHeartbeatMs: number;
}

/** What the gateway serves once it follows the stream. */
export interface GatewayFeed {
  fanOut: FanOut;
  subscriptions: Subscriptions;
  status: () => object | undefined;
}

export interface Gateway {
  listen(port: number, host?: string): Promise<number>;
  /** Starts serving /ws and /sse from the stream; until then they answer 503 with Retry-After. */
  attach(feed: GatewayFeed): void;
  /** Sends a frame to every WebSocket that joined the live broadcast. */
  broadcast(frame: string): void;
  /** Closes every client (1001; /sse streams end) so it reconnects elsewhere; 503 from now on. */
  closeClients(): void;
  /** Stops listening (probes included) and the /sse heartbeat. */
  close(): void;
}

interface Connection {
  since: number | undefined;
  principal: Principal | undefined;
  subscriber: Subscriber | undefined;
  cancelExpiry: () => void;
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

/**
 * The uWS application: /ws and /sse on top of the one fan-out and resume, both behind the
 * same token check, and the plain HTTP routes.
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const app = uWS.App();
  let feed: GatewayFeed | undefined;
  let accepting = true;
  let listenSocket: uWS.us_listen_socket | undefined;
  const sseStreams = new Set<SseStream>();
  const encodeSse = createSseEncoder();
  const heartbeat = setInterval(() => {
    for (const stream of sseStreams) stream.heartbeat();
  }, deps.sseHeartbeatMs);
  heartbeat.unref();

  /**
   * The feed while new subscribers are served; otherwise answers (503, or for an event-stream
   * client a stream that asks to reconnect) and returns undefined.
   */
  function servingFeed(res: uWS.HttpResponse, eventStream = false): GatewayFeed | undefined {
    if (feed && accepting && !deps.probes.isDraining()) return feed;
    if (eventStream) {
      endWithRetry(res, 1000);
      return undefined;
    }
    const detail = feed ? 'this gateway is shutting down; reconnect' : 'this gateway is starting; retry shortly';
    writeProblem(res, 503, problem(503, 'unavailable', detail), { 'retry-after': '1' });
    return undefined;
  }

  function refuseBadSince(res: uWS.HttpResponse, name: string, path: string): void {
    writeProblem(res, 400, problem(400, 'invalid-parameter', `${name} must be a non-negative integer`, [{ path, message: 'must be a non-negative integer' }]));
  }

  /**
   * Runs the resume of a subscriber the fan-out has just registered, and closes it (1008) when
   * its token expires. Returns the cancel of that close, for the transport's own close.
   */
  function startSubscription(current: GatewayFeed, subscriber: Subscriber, since: number | undefined, principal: Principal | undefined): () => void {
    const cancelExpiry = atExpiry(principal?.expiresAt, () => {
      if (subscriber.isClosed()) return;
      deps.log.debug({ sub: principal?.sub }, 'token expired; closing the connection');
      subscriber.sink.close(CLOSE_POLICY_VIOLATION, 'token expired');
      subscriber.closed();
    });
    current.subscriptions.open(subscriber, since).catch((err: unknown) => {
      deps.log.warn({ err }, 'resume failed; closing the connection');
      subscriber.sink.close(CLOSE_TRY_AGAIN_LATER, 'resume failed');
      subscriber.closed();
    });
    return cancelExpiry;
  }

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
      // uWS' request lives only until this handler returns: everything is read now.
      const since = parseSince(req.getQuery('since'));
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      admitSubscriber(res, readCredentials(req), deps, (principal) => {
        if (since === 'invalid') return refuseBadSince(res, 'since', 'query:since');
        if (!servingFeed(res)) return;
        res.upgrade<Connection>({ since, principal, subscriber: undefined, cancelExpiry: () => {} }, key, protocol, extensions, context);
      });
    },
    open: (ws) => {
      const connection = ws.getUserData();
      if (!feed) {
        ws.end(CLOSE_TRY_AGAIN_LATER, 'gateway not ready');
        return;
      }
      // Once closed (by uWS' close handler or by the fan-out) the socket is never touched again.
      const subscriber = feed.fanOut.add(webSocketSink(ws, () => connection.subscriber?.isClosed() ?? false));
      connection.subscriber = subscriber;
      connection.cancelExpiry = startSubscription(feed, subscriber, connection.since, connection.principal);
    },
    drain: (ws) => ws.getUserData().subscriber?.drained(),
    close: (ws) => {
      const connection = ws.getUserData();
      connection.cancelExpiry();
      connection.subscriber?.closed();
    },
  });

  app.get('/sse', (res, req) => {
    // The standard resume (an EventSource sends the last id it saw), else ?since= as on /ws.
    const lastEventId = req.getHeader('last-event-id');
    const since = lastEventId ? parseSince(lastEventId) : parseSince(req.getQuery('since'));
    const eventStream = req.getHeader('accept').includes('text/event-stream');
    admitSubscriber(res, readCredentials(req), deps, (principal) => {
      if (since === 'invalid') return lastEventId ? refuseBadSince(res, 'Last-Event-ID', 'header:last-event-id') : refuseBadSince(res, 'since', 'query:since');
      const current = servingFeed(res, eventStream);
      if (!current) return;
      const state: { stream?: SseStream; subscriber?: Subscriber; cancelExpiry: () => void } = { cancelExpiry: () => {} };
      const stream = startSseStream(res, encodeSse, since, {
        drained: () => state.subscriber?.drained(),
        ended: () => {
          if (state.stream) sseStreams.delete(state.stream);
          state.cancelExpiry();
          state.subscriber?.closed();
        },
      });
      state.stream = stream;
      sseStreams.add(stream);
      state.subscriber = current.fanOut.add(stream.sink);
      state.cancelExpiry = startSubscription(current, state.subscriber, since, principal);
    });
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
      clearInterval(heartbeat);
      if (listenSocket) uWS.us_listen_socket_close(listenSocket);
      listenSocket = undefined;
    },
  };
}
