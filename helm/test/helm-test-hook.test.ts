import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import { parseAllDocuments } from 'yaml';
import { startLocalStack, type LocalStack } from '../../e2e/target.js';
import { freePort, ROOT } from '../../scripts/stack.js';

const run = promisify(execFile);
const SECRET = 'helm-test-hook-secret-of-32-characters-or-more';

/**
 * The `helm test` Pod as the chart renders it (command, script from its ConfigMap, env),
 * run against a local stack: the cluster's service URLs are the only thing swapped.
 */
function renderedHook(): { args: string[]; script: string; env: Record<string, string> } {
  const helm = execFileSync(join(ROOT, 'scripts', 'ensure-helm.sh'), ['4'], { encoding: 'utf8' }).trim();
  const out = execFileSync(
    helm,
    ['template', 'rel', join(ROOT, 'helm', 'falcon'), '--show-only', 'templates/tests/roundtrip.yaml', '--set', 'image.repository=falcon', '--set', 'postgres.existingSecret=db', '--set', `auth.jwtSecret=${SECRET}`],
    { encoding: 'utf8' },
  );
  const docs = parseAllDocuments(out).map((d) => d.toJS());
  const configMap = docs.find((d) => d.kind === 'ConfigMap');
  const pod = docs.find((d) => d.kind === 'Pod');
  const [container] = pod.spec.containers;
  expect(container.command).to.deep.equal(['node']);
  const env: Record<string, string> = {};
  for (const e of container.env as { name: string; value?: string; valueFrom?: unknown }[]) {
    // The one Secret the Pod reads: the chart's own JWT secret, given above.
    env[e.name] = e.value ?? (e.name === 'AUTH_JWT_SECRET' ? SECRET : '');
  }
  return { args: container.args, script: configMap.data['roundtrip.mjs'], env };
}

async function runHook(urls: { ingest: string; query: string; realtime: string }, extraEnv: Record<string, string> = {}) {
  const { args, script, env } = renderedHook();
  const dir = mkdtempSync(join(tmpdir(), 'falcon-helm-test-'));
  const path = join(dir, 'roundtrip.mjs');
  writeFileSync(path, script);
  expect(args).to.deep.equal(['/etc/falcon/test/roundtrip.mjs']);
  return run('node', [path], {
    env: { PATH: process.env['PATH'], ...env, INGEST_URL: urls.ingest, QUERY_URL: urls.query, REALTIME_URL: urls.realtime, ...extraEnv },
  });
}

describe('helm test hook (the rendered Pod against a local stack)', function () {
  this.timeout(120_000);
  let stack: LocalStack;

  before(async () => {
    stack = await startLocalStack({ env: { AUTH_JWT_SECRET: SECRET } });
  });
  after(async () => {
    await stack?.stop();
  });

  it('posts a message, sees it on the WebSocket and reads it back through query', async () => {
    const { stdout } = await runHook({ ingest: stack.ingest, query: stack.query, realtime: stack.realtime[0]! });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; id?: string; seq?: number });
    expect(lines.map((l) => l.msg)).to.include.members(['accepted', 'delivered on the WebSocket', 'read back through query']);
    const { id, seq } = lines.find((l) => l.msg === 'accepted')!;
    // Stored for real, in the stack's own database.
    const client = new pg.Client({ connectionString: stack.databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT seq FROM messages WHERE id = $1', [id]);
      expect(rows.map((r) => Number(r.seq))).to.deep.equal([seq]);
    } finally {
      await client.end();
    }
  });

  it('fails (exit 1) when ingest cannot be reached', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const failure = await runHook({ ingest: closed, query: stack.query, realtime: stack.realtime[0]! }, { TIMEOUT_MS: '3000' }).then(
      () => undefined,
      (err: { code: number; stdout: string }) => err,
    );
    expect(failure?.code).to.equal(1);
    expect(failure?.stdout).to.include('timed out waiting for ingest to accept');
  });
});
