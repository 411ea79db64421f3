import type { Server } from 'node:http';
import type { Probes } from './ops.js';
import { problem, PROBLEM_CONTENT_TYPE } from './problem.js';
import { closeHttpServer, createHttpServer, listen } from './runtime.js';

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/** A bare node:http server for services that have no API of their own (the persister). */
export async function startOpsServer(probes: Probes, port: number, host = '0.0.0.0'): Promise<OpsServer> {
  const server: Server = createHttpServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': PROBLEM_CONTENT_TYPE, allow: 'GET, HEAD' });
      res.end(JSON.stringify(problem(405, 'method-not-allowed', `${req.method} is not allowed here`)));
      return;
    }
    probes.handle(path).then(
      (answer) => {
        if (!answer) {
          res.writeHead(404, { 'content-type': PROBLEM_CONTENT_TYPE });
          res.end(JSON.stringify(problem(404, 'not-found', `no route for ${path}`)));
          return;
        }
        res.writeHead(answer.status, { 'content-type': answer.contentType });
        res.end(answer.body);
      },
      () => {
        res.writeHead(500).end();
      },
    );
  });
  const bound = await listen(server, port, host);
  return { port: bound, close: () => closeHttpServer(server) };
}
