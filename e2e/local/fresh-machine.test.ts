/**
 * `npm start` the way a new user meets it (issue 14): as root, from a checkout under a folder
 * only root may enter, on a machine where nothing answers on 127.0.0.1:4222 or :5432. The
 * checkout is a `git clone` of this one's HEAD; its node_modules are this checkout's, copied
 * with `cp -a` (what `npm ci` of the same lockfile installs, without the registry and the CPU):
 * the copy keeps the root ownership and modes that made the binaries unreachable. "Nothing
 * answers" is a fresh network namespace with only loopback up, so NATS and Postgres must be
 * started by npm start itself; the HTTP and WebSocket checks run in there too
 * (namespace-probe.ts).
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fallbackHome, ROOT_FALLBACK_BASE } from '../../scripts/postgres-as-root.js';
import { ROOT, waitFor } from '../../scripts/stack.js';

const WORKSPACES = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;

function sh(command: string, args: string[], cwd?: string) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.error?.message ?? result.stderr}`);
  return result.stdout;
}

/** Why this machine cannot run the test, or undefined when it can (the namespace is then made). */
function makeNamespace(name: string): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root, and the issue is about root';
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (add.status !== 0) return `this machine cannot create a network namespace (ip netns add: ${add.error?.message ?? add.stderr.trim()})`;
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return undefined;
}

/** Processes left in the namespace, or anywhere running from the clone or its Postgres folder. */
function leftovers(namespace: string, folders: string[]): string[] {
  const inNamespace = new Set((spawnSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' }).stdout ?? '').split(/\s+/).filter(Boolean));
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      continue; // ended meanwhile
    }
    if (inNamespace.has(pid) || folders.some((folder) => cmdline.includes(folder))) found.push(`${pid} ${cmdline}`);
  }
  return found;
}

describe('npm start on a fresh machine', function () {
  this.timeout(480_000);
  const namespace = `falcon-fresh-${randomBytes(4).toString('hex')}`;
  let parent: string | undefined;
  let checkout = '';
  let npm: ChildProcess | undefined;
  const baseExisted = existsSync(ROOT_FALLBACK_BASE);

  after(() => {
    // Whatever happened, nothing of this test stays: processes, the namespace, the folders.
    if (npm?.pid && npm.exitCode === null && npm.signalCode === null) {
      try {
        process.kill(-npm.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const line of leftovers(namespace, checkout ? [checkout, fallbackHome(checkout)] : [])) {
      try {
        process.kill(Number(line.split(' ')[0]), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    spawnSync('ip', ['netns', 'delete', namespace]);
    if (parent) rmSync(parent, { recursive: true, force: true });
    if (checkout) rmSync(fallbackHome(checkout), { recursive: true, force: true });
    if (!baseExisted && existsSync(ROOT_FALLBACK_BASE)) {
      try {
        rmdirSync(ROOT_FALLBACK_BASE);
      } catch {
        // another checkout's Postgres lives there now
      }
    }
  });

  it('as root, from a clone under a mode-700 folder, with no NATS or Postgres answering: starts both, stores, lists and pushes a POST, and Ctrl-C leaves no process behind', async function () {
    const unrunnable = makeNamespace(namespace);
    if (unrunnable) {
      console.log(`      skipped: ${unrunnable}`);
      this.skip();
    }

    parent = mkdtempSync(join(tmpdir(), 'falcon-fresh-'));
    chmodSync(parent, 0o700);
    checkout = join(parent, 'falcon');
    sh('git', ['clone', '--quiet', ROOT, checkout]);
    for (const dir of ['.', ...WORKSPACES]) {
      if (existsSync(join(ROOT, dir, 'node_modules'))) sh('cp', ['-a', join(ROOT, dir, 'node_modules'), join(checkout, dir, 'node_modules')]);
    }
    expect(statSync(parent).mode & 0o777).to.equal(0o700);
    // Run by a postgres user before this fix, initdb could not even be reached here.
    expect(spawnSync('test', ['-x', checkout], { uid: 65534, gid: 65534 }).status, 'the checkout is out of reach of other users').to.equal(1);

    // A fresh root shell: no NATS_URL/DATABASE_URL, nats-server found on root's usual PATH.
    const env = { PATH: `${process.env['PATH'] ?? '/usr/bin:/bin'}:/usr/local/sbin:/usr/sbin:/sbin`, HOME: process.env['HOME'] ?? '/root' };
    const started = Date.now();
    npm = spawn('ip', ['netns', 'exec', namespace, 'npm', 'start'], { cwd: checkout, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    for (const stream of [npm.stdout!, npm.stderr!]) {
      // eslint-disable-next-line no-control-regex
      createInterface({ input: stream }).on('line', (line) => output.push(line.replace(/\x1b\[[0-9;]*m/g, '')));
    }
    const exited = new Promise<number | string>((resolve) => npm!.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    let ended = false;
    void exited.then(() => {
      ended = true;
    });
    const tail = () => output.slice(-40).join('\n');
    await waitFor('npm start to say the stack is up', () => {
      if (ended) throw new Error(`npm start ended:\n${tail()}`);
      return output.some((line) => line.includes('Ctrl-C stops everything'));
    }, 300_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}\n${tail()}`);
    });
    console.log(`      npm start was ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const said = output.join('\n');
    expect(said).to.include('starting nats-server -js');
    const rootLine = output.find((line) => line.includes('starting embedded Postgres on'));
    expect(rootLine, 'one line says what happens as root')
      .to.include('since it refuses to run as root')
      .and.include(`data and binaries in ${fallbackHome(checkout)} (`)
      .and.include(`cannot enter ${checkout})`);
    const url = (pattern: RegExp) => {
      const found = output.map((line) => pattern.exec(line)?.[1]).find(Boolean);
      if (!found) throw new Error(`no ${pattern} in:\n${tail()}`);
      return found;
    };
    const ingest = url(/curl -X POST (http:\/\/\S+)\/api\/messages/);
    const query = url(/list\s+curl (http:\/\/\S+)\/api\/messages/);
    const realtime = url(/live page\s+(http:\/\/\S+?)\/?$/);

    const probe = spawnSync('ip', ['netns', 'exec', namespace, process.execPath, '--import', 'tsx', join('e2e', 'local', 'namespace-probe.ts'), ingest, query, realtime], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(probe.status, `probe failed: ${probe.stderr}\n${tail()}`).to.equal(0);
    const seen = JSON.parse(probe.stdout.trim().split('\n').pop()!) as {
      payload: unknown;
      status: number;
      accepted: { id: string; seq: number };
      pushed?: { id: string; payload: unknown };
      listed?: { id: string; payload: unknown };
      stored: { status: number; body: { id: string; payload: unknown } };
    };
    expect(seen.status).to.equal(202);
    expect(seen.pushed, 'pushed over the WebSocket').to.include({ id: seen.accepted.id }).and.to.have.deep.property('payload', seen.payload);
    expect(seen.listed, 'listed').to.include({ id: seen.accepted.id }).and.to.have.deep.property('payload', seen.payload);
    expect(seen.stored.status).to.equal(200);
    expect(seen.stored.body).to.include({ id: seen.accepted.id }).and.to.have.deep.property('payload', seen.payload);

    // Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
    process.kill(-npm.pid!, 'SIGINT');
    await waitFor('npm start to end after Ctrl-C', () => ended, 60_000, 100);
    let left: string[] = [];
    await waitFor('no process left behind', () => (left = leftovers(namespace, [checkout, fallbackHome(checkout)])).length === 0, 30_000, 100).catch(() => {
      throw new Error(`left behind after Ctrl-C:\n${left.join('\n')}\n${tail()}`);
    });
    expect(output.join('\n')).to.include('stopping');
  });
});
