/**
 * Child process: the ingest baseline, a koa handler that reads and JSON-parses the body with
 * the same body parser and answers 202. No validation, no stream.
 *   argv: port
 */
import { createServer } from 'node:http';
import Koa from 'koa';
import { readJsonBody } from '../services/ingest/src/json-body.js';

const app = new Koa();
app.use(async (ctx) => {
  const { value } = await readJsonBody(ctx.req, 64 * 1024);
  ctx.status = 202;
  ctx.body = { ok: typeof value === 'object' };
});
createServer(app.callback()).listen(Number(process.argv[2]), '127.0.0.1', () => process.send!({ type: 'ready' }));
