import { createConnection, createServer, type Socket } from 'node:net';
import { listenLocal, splice } from './tcp-proxy.js';

export interface TcpBalancer {
  port: number;
  url(scheme: string): string;
  /** Where new connections go from now on, in turn (connections already open stay). */
  setTargets(ports: number[]): void;
  /** Connections handed to each target port so far. */
  counts(): Map<number, number>;
  close(): Promise<void>;
}

/**
 * A round-robin TCP balancer on 127.0.0.1, standing in for a Kubernetes Service in front of
 * several replicas: each new connection goes to the next target.
 */
export async function startTcpBalancer(ports: number[]): Promise<TcpBalancer> {
  let targets = [...ports];
  let next = 0;
  const counts = new Map<number, number>();
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const port = targets[next++ % targets.length]!;
    counts.set(port, (counts.get(port) ?? 0) + 1);
    splice(client, createConnection({ host: '127.0.0.1', port }), sockets);
  });
  const port = await listenLocal(server);
  return {
    port,
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    setTargets(p) {
      targets = [...p];
      next = 0;
    },
    counts: () => new Map(counts),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
