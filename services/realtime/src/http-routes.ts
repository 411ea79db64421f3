import type uWS from 'uWebSockets.js';
import { problem, PROBLEM_CONTENT_TYPE, type Probes } from '@falcon/shared';
import type { StaticFile } from './static-files.js';

export function writeProblem(res: uWS.HttpResponse, status: number, body: ReturnType<typeof problem>, headers: Record<string, string> = {}): void {
  res.cork(() => {
    res.writeStatus(`${status} ${body.title}`).writeHeader('content-type', PROBLEM_CONTENT_TYPE).writeHeader('x-content-type-options', 'nosniff');
    for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
    res.end(JSON.stringify(body));
  });
}

function writeJson(res: uWS.HttpResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.cork(() => {
    res.writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').writeHeader('x-content-type-options', 'nosniff').end(text);
  });
}

export interface HttpRoutesDeps {
  probes: Probes;
  files: Map<string, StaticFile>;
  /** The page's runtime configuration (ingest and query URLs, token), given the request's Host header. */
  pageConfig: (host: string) => Record<string, unknown>;
  /** Security headers (CSP and friends) of the page and its files, given the request's Host header. */
  pageHeaders: (host: string) => Record<string, string>;
  /** The pipeline's state for the page; undefined until the gateway follows the stream. */
  status: () => object | undefined;
}

/** The gateway's plain HTTP: the live page, its config, the pipeline status, the probes. */
export function registerHttpRoutes(app: uWS.TemplatedApp, deps: HttpRoutesDeps): void {
  app.get('/config.json', (res, req) => writeJson(res, deps.pageConfig(req.getHeader('host'))));

  app.get('/status.json', (res) => {
    const status = deps.status();
    if (status) writeJson(res, status);
    else writeProblem(res, 503, problem(503, 'unavailable', 'the gateway is starting'), { 'retry-after': '1' });
  });

  app.get('/*', (res, req) => {
    const path = req.getUrl();
    const file = deps.files.get(path);
    if (file) {
      const headers = deps.pageHeaders(req.getHeader('host'));
      res.cork(() => {
        res.writeHeader('content-type', file.contentType).writeHeader('cache-control', 'no-cache');
        for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
        res.end(file.body);
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
}
