/**
 * Child process: the ingest baseline, a koa handler that reads and JSON-parses the body with
 * the same body parser and answers 202. No validation, no stream.
 *   argv: port
 */
import { createServer } from 'node:http';
import { bodyParser } from '@koa/bodyparser';
import Koa from 'koa';

const app = new Koa();
app.use(bodyParser({ enableTypes: ['json'] }));
app.use((ctx) => {
  ctx.status = 202;
  ctx.body = { ok: typeof ctx.request.body === 'object' };
});
createServer(app.callback()).listen(Number(process.argv[2]), '127.0.0.1', () => process.send!({ type: 'ready' }));
