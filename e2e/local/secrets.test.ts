/**
 * Secrets never leak: a stack run with every secret configured (JWT secret, NATS password,
 * Postgres password), driven through success and refusal, then every log line, /readyz,
 * /metrics and problem body it produced is searched for those secrets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startLocalStack, type LocalStack } from '../target.js';
import { freePort, isPortOpen, ROOT, waitFor } from '../../scripts/stack.js';
import { mintToken, tamperSignature } from '../../test-support/tokens.js';

const NATS_SERVER = process.env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server';
const JWT_SECRET = 'jwt-secret-that-must-never-be-logged-0123456789';
const NATS_PASSWORD = 'nats-password-never-logged-42';
const DB_PASSWORD = 'db-password-never-logged-43';

describe('secrets in a run with credentials configured (local processes)', function () {
  this.timeout(300_000);
  let dir: string;
  let nats: ChildProcess;
  let stack: LocalStack;
  const seen: string[] = [];
  let validToken: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'falcon-secrets-'));
    const port = await freePort();
    // Services that log in use NATS_USER/NATS_PASSWORD; any still connecting without
    // credentials land on the no_auth_user, so the whole stack runs against this server.
    writeFileSync(
      join(dir, 'nats.conf'),
      `listen: "127.0.0.1:${port}"\njetstream { store_dir: "${join(dir, 'js')}" }\n` +
        `authorization { users: [ { user: falcon, password: "${NATS_PASSWORD}" }, { user: anonymous, password: "unused-${NATS_PASSWORD}" } ] }\nno_auth_user: anonymous\n`,
    );
    nats = spawn(NATS_SERVER, ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
    await waitFor('nats-server', () => isPortOpen('127.0.0.1', port), 15_000);
    const databaseUrl = new URL(process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    databaseUrl.password = DB_PASSWORD;
    stack = await startLocalStack({
      natsUrl: `nats://127.0.0.1:${port}`,
      databaseUrl: databaseUrl.toString(),
      suiteAuth: false,
      env: { AUTH_JWT_SECRET: JWT_SECRET, NATS_USER: 'falcon', NATS_PASSWORD, INGEST_RATE_LIMIT: '2', INGEST_RATE_BURST: '0', LOG_LEVEL: 'debug' },
    });
    validToken = await mintToken({ sub: 'secrets-test' }, JWT_SECRET);
  });

  after(async () => {
    await stack?.stop();
    if (nats && nats.exitCode === null) {
      nats.kill('SIGTERM');
      await once(nats, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function record(res: Response): Promise<Response> {
    const headers: string[] = [];
    res.headers.forEach((value, name) => headers.push(`${name}: ${value}`));
    seen.push(...headers, await res.clone().text());
    return res;
  }

  it('keeps every configured secret and every presented token out of logs, probes, metrics and answers', async () => {
    const bad = tamperSignature(validToken);
    const post = (token: string | undefined, path = '/api/messages') =>
      fetch(`${stack.ingest}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: '{"s":1}' });
    expect((await record(await post(validToken))).status).to.equal(202);
    expect((await record(await post(bad))).status).to.equal(401);
    expect((await record(await post(undefined))).status).to.equal(401);
    // Over the limit, and a token in the query string where none is accepted.
    for (let i = 0; i < 4; i++) await record(await post(validToken));
    await record(await post(validToken, `/api/messages?access_token=${validToken}`));
    await record(await fetch(`${stack.query}/api/messages?access_token=${validToken}`));
    await record(await fetch(`${stack.query}/api/messages`, { headers: { authorization: `Bearer ${bad}` } }));
    expect((await record(await fetch(`${stack.query}/api/messages`, { headers: { authorization: `Bearer ${validToken}` } }))).status).to.equal(200);
    for (const url of [stack.ingest, stack.query, ...stack.realtime, ...stack.persister]) {
      for (const path of ['/readyz', '/metrics', '/healthz']) await record(await fetch(`${url}${path}`));
    }
    // Stop the stack so every log is complete, then read them all.
    await stack.stack.stop();
    const logDir = join(ROOT, '.falcon', 'logs', stack.stack.namespace);
    const logs = readdirSync(logDir).map((file) => readFileSync(join(logDir, file), 'utf8'));
    expect(logs.join('')).to.contain('"service":"ingest"');
    const everything = [...logs, ...seen].join('\n');
    const signature = validToken.split('.')[2]!;
    for (const [what, secret] of Object.entries({ JWT_SECRET, NATS_PASSWORD, DB_PASSWORD, 'a presented token': signature, 'a presented bad token': bad.split('.')[2]! })) {
      expect(everything.includes(secret), `${what} appears in the run's output`).to.equal(false);
    }
  });
});
