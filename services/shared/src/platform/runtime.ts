import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';

/** The version in the package.json next to a service's dist/ or src/ folder. */
export function packageVersion(moduleUrl: string): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', moduleUrl), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/**
 * Node's HTTP servers wait up to five minutes for a slow body by default; these bounds make a
 * slowloris client cost a socket for seconds, not minutes.
 */
export function hardenHttpServer(server: Server, requestTimeoutMs = 15_000): Server {
  server.requestTimeout = requestTimeoutMs;
  server.headersTimeout = requestTimeoutMs > 0 ? Math.min(10_000, requestTimeoutMs) : 10_000;
  server.keepAliveTimeout = 5_000;
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

/** Stops accepting, lets requests in flight finish, and closes idle keep-alive sockets. */
export function closeHttpServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
