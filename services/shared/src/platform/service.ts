import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ConfigError, type ServiceBasics } from './config.js';
import { createLifecycle, type Lifecycle, type ProcessEvents } from './lifecycle.js';
import { createLogger } from './logger.js';
import { createMetricsRegistry, createProbes, type Probes, type Registry } from './ops.js';
import { problem, PROBLEM_CONTENT_TYPE } from './problem.js';
import { isAborted } from './retry.js';
import { closeHttpServer, createHttpServer, listen, packageVersion } from './runtime.js';

/** What a service's start function gets: everything built before any dependency is dialled. */
export interface ServiceContext<C extends ServiceBasics> {
  config: C;
  log: Logger;
  version: string;
  registry: Registry;
  /** Answering from the first moment: /readyz says `starting` until start() resolves. */
  probes: Probes;
  life: Lifecycle;
  /** life.signal: pass it to every connect, wait and retry. */
  signal: AbortSignal;
  /** How long a stop lets HTTP requests in flight finish before cutting them. */
  graceMs: number;
  /** The service's public node:http listener, answering probes at once (see startHttpListener). */
  listenHttp(options?: Omit<HttpListenerOptions, 'probes' | 'log' | 'port' | 'graceMs'>): Promise<HttpListener>;
}

export interface ServiceDefinition<C extends ServiceBasics> {
  name: string;
  /** import.meta.url of the service's main.ts (its package.json gives the version). */
  moduleUrl: string;
  loadConfig(env: Record<string, string | undefined>): C;
  /** Dials dependencies and starts components, registering each one's stop with ctx.life. */
  start(ctx: ServiceContext<C>): Promise<void>;
}

export interface RunOptions {
  /** The environment to read the configuration from (main.ts passes process.env). */
  env: Record<string, string | undefined>;
  exit?: (code: number) => void;
  process?: ProcessEvents;
}

function bootLevel(env: Record<string, string | undefined>): string {
  const level = env['LOG_LEVEL'];
  return level && ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level) ? level : 'info';
}

/**
 * The one life cycle of every Falcon service: configuration (errors logged as fatal, all at
 * once), probes listening before any dependency is dialled (OPS_PORT too), then the service's
 * own start; readiness once it resolves. Stops run in reverse order of registration; the exit
 * rule is createLifecycle's. Resolves with the lifecycle (tests stop it through it).
 */
export async function runService<C extends ServiceBasics>(definition: ServiceDefinition<C>, options: RunOptions): Promise<Lifecycle | undefined> {
  const env = options.env;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const version = packageVersion(definition.moduleUrl);
  let config: C;
  try {
    config = definition.loadConfig(env);
  } catch (err) {
    const log = createLogger({ service: definition.name, version, level: bootLevel(env) });
    if (err instanceof ConfigError) log.fatal({ problems: err.problems }, 'invalid configuration');
    else log.fatal({ err }, 'invalid configuration');
    exit(1);
    return undefined;
  }
  const log = createLogger({ service: definition.name, version, level: config.logLevel });
  const registry = createMetricsRegistry(definition.name, version);
  const probes = createProbes(registry);
  const life = createLifecycle({
    log,
    timeoutMs: config.shutdownTimeoutMs,
    onDraining: () => probes.markDraining(),
    exit,
    process: options.process,
  });
  const graceMs = Math.max(500, Math.floor(config.shutdownTimeoutMs / 2));
  const ctx: ServiceContext<C> = {
    config,
    log,
    version,
    registry,
    probes,
    life,
    signal: life.signal,
    graceMs,
    async listenHttp(httpOptions = {}) {
      const listener = await startHttpListener({ ...httpOptions, port: config.port, probes, log, graceMs });
      log.info({ port: listener.port, ...startupTimes() }, 'listening');
      // Registered now, the close runs last if the application never attaches.
      life.onStop('http listener', () => listener.close());
      return {
        port: listener.port,
        attach(handler) {
          listener.attach(handler);
          // Intake stops before the dependencies it uses, which were started before it; the
          // requests in flight still finish (closeHttpServer), then NATS drains or pg ends.
          life.onStop('http', () => listener.close());
        },
        close: () => listener.close(),
      };
    },
  };
  try {
    if (config.opsPort !== undefined) {
      const ops = await startHttpListener({ port: config.opsPort, probes, log, graceMs, probesOnly: true });
      life.onStop('ops listener', () => ops.close());
      log.info({ port: ops.port }, 'ops listening');
    }
    await definition.start(ctx);
    if (!life.isStopping()) {
      probes.markStarted();
      log.info({ port: config.port }, `${definition.name} started`);
    }
  } catch (err) {
    // Once a stop is under way, a start cut short by it (an aborted wait, a request on a
    // draining connection) is expected; before that, any error is a start-up failure.
    if (life.isStopping()) log.debug({ err, aborted: isAborted(err) }, 'start-up interrupted by the stop');
    else void life.fail('start-up failed', err);
  }
  return life;
}

/**
 * How long the process took to listen: wall time since node started, and the CPU time that
 * took (module loading included), which stays meaningful on a busy machine.
 */
export function startupTimes(): { uptimeMs: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  return { uptimeMs: Math.round(process.uptime() * 1000), cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
}

export interface HttpListenerOptions {
  port: number;
  host?: string;
  probes: Probes;
  log: Logger;
  /** 0 disables the total request bound (streaming exports). */
  requestTimeoutMs?: number;
  graceMs?: number;
  /** Retry-After for the 503 that app routes answer until the app is attached. */
  retryAfterSeconds?: number;
  /** No application routes will ever be attached: other paths are 404. */
  probesOnly?: boolean;
}

export interface HttpListener {
  port: number;
  /** Hands every request to the application from now on (it serves the probes itself). */
  attach(handler: RequestListener): void;
  close(): Promise<void>;
}

function answer(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, ...headers });
  res.end(body);
}

/**
 * A node:http listener that answers /healthz, /readyz and /metrics from the first moment and
 * every other path with 503 problem+json and Retry-After until the application is attached,
 * so a pod whose dependencies are not up yet is probe-able, and clients are told to retry.
 */
export async function startHttpListener(options: HttpListenerOptions): Promise<HttpListener> {
  let handler: RequestListener | undefined;
  const early = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const probe = req.method === 'GET' || req.method === 'HEAD' ? options.probes.handle(path) : Promise.resolve(undefined);
    probe.then(
      (found) => {
        if (found) return answer(res, found.status, found.contentType, found.body);
        if (options.probesOnly) {
          if (req.method !== 'GET' && req.method !== 'HEAD') {
            return answer(res, 405, PROBLEM_CONTENT_TYPE, JSON.stringify(problem(405, 'method-not-allowed', `${req.method} is not allowed here`)), { allow: 'GET, HEAD' });
          }
          return answer(res, 404, PROBLEM_CONTENT_TYPE, JSON.stringify(problem(404, 'not-found', `no route for ${path}`)));
        }
        const retryAfter = String(options.retryAfterSeconds ?? 1);
        answer(res, 503, PROBLEM_CONTENT_TYPE, JSON.stringify(problem(503, 'unavailable', 'the service is starting; retry shortly')), { 'retry-after': retryAfter });
      },
      (err: unknown) => {
        options.log.error({ err, path }, 'probe failed');
        answer(res, 500, PROBLEM_CONTENT_TYPE, JSON.stringify(problem(500, 'internal', 'probe failed')));
      },
    );
  };
  const server = createHttpServer((req, res) => (handler ?? early)(req, res), options.requestTimeoutMs);
  const port = await listen(server, options.port, options.host);
  return {
    port,
    attach(next) {
      handler = next;
    },
    close: () => closeHttpServer(server, options.graceMs),
  };
}
