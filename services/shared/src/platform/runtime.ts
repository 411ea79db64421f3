import { readFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';

/** The version in the package.json next to a service's dist/ or src/ folder. */
export function packageVersion(moduleUrl: string): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', moduleUrl), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/**
 * An HTTP server with bounds on slow clients: Node's defaults wait five minutes for a body and
 * check timeouts only every 30 s, so a slowloris client would hold a socket for minutes. Here
 * it holds one for seconds. `requestTimeoutMs` 0 disables the total bound (streaming exports)
 * while headers must still arrive within 10 s.
 */
export function createHttpServer(handler: RequestListener, requestTimeoutMs = 15_000): Server {
  const server = createServer(
    {
      requestTimeout: requestTimeoutMs,
      headersTimeout: requestTimeoutMs > 0 ? Math.min(10_000, requestTimeoutMs) : 10_000,
      connectionsCheckingInterval: 1_000,
      keepAliveTimeout: 5_000,
    },
    handler,
  );
  return server;
}

export function listen(server: Server, port: number, host = '0.0.0.0'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

/**
 * Stops accepting, lets requests in flight finish, and closes keep-alive sockets: idle ones at
 * once, busy ones after their current response (a client that keeps a connection busy would
 * otherwise hold server.close() open until the shutdown deadline). Whatever is still open
 * after `graceMs` (a long export, a client that stopped reading) is cut, so the stop finishes
 * within Kubernetes' grace period and exits 0.
 */
export function closeHttpServer(server: Server, graceMs = 10_000): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.on('request', (_req, res) => res.setHeader('connection', 'close'));
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
