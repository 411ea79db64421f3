/**
 * The container image as a tested artefact: built with podman (base image made locally, see
 * scripts/image/), then run the way the rendered chart runs it (see chart-pods.ts): the
 * migration Job's container to completion, then the four services against this machine's NATS
 * and Postgres in a fresh namespace and database, the black-box suite against their ports, and
 * the dev image through Tilt's live update as the pod's user.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nuid } from '@nats-io/transport-node';
import pg from 'pg';
import { parse, parseAllDocuments } from 'yaml';
import { falconNames } from '@falcon/shared';
import { buildImages, imageRef } from '../../scripts/image/build.js';
import { podman, PODMAN_QUIRKS } from '../../scripts/image/podman.js';
import { ROOT, waitFor } from '../../scripts/stack.js';
import { mintToken } from '../../test-support/tokens.js';
import { CHART, podContainer, renderChart, workloads, type Doc, type PodContainer, type Probe } from './chart-pods.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const DATABASE_URL = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SERVICES = ['ingest', 'persister', 'query', 'realtime'] as const;
const RUN_ID = nuid.next().toLowerCase().slice(-10);
const LABEL = { 'falcon.test': `image-${RUN_ID}` };
/** ConfigMap and Secret volumes of the containers, as files. */
const VOLUMES = mkdtempSync(join(tmpdir(), 'falcon-image-volumes-'));

/** A fresh database and stream namespace on this machine's Postgres and NATS. */
async function isolate(prefix: string) {
  const namespace = `${prefix}${RUN_ID}`;
  const database = `falcon_${prefix}_${RUN_ID}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const url = new URL(DATABASE_URL);
  url.pathname = `/${database}`;
  return {
    namespace,
    databaseUrl: url.toString(),
    async drop() {
      const nc = await connect({ servers: NATS_URL.split(',') });
      const jsm = await jetstreamManager(nc);
      const names = falconNames(namespace);
      for (const stream of [names.stream, names.deadLetterStream]) await jsm.streams.delete(stream).catch(() => false);
      await nc.close();
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** The chart's own values.yaml, to pass only keys this version of the chart has. */
const chartDefaults = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
// HS256 wants at least 256 bits of key (RFC 7518 3.2); the chart and the services check it.
const JWT_SECRET = randomBytes(32).toString('hex');

/**
 * Values that must differ here: the image just built, this machine's NATS and Postgres, and
 * (when the chart has auth) a secret of this run's, from which the e2e suite gets a token.
 */
function chartValues(target: string, databaseUrl: string, namespace: string): string[] {
  const image = imageRef(target);
  const [repository, tag] = [image.slice(0, image.lastIndexOf(':')), image.slice(image.lastIndexOf(':') + 1)];
  const values = [`image.repository=${repository}`, `image.tag=${tag}`, `nats.url=${NATS_URL}`, `postgres.url=${databaseUrl}`, `namespace=${namespace}`];
  if (chartDefaults['auth']) values.push('auth.enabled=true', `auth.jwtSecret=${JWT_SECRET}`);
  return values.flatMap((v) => ['--set', v]);
}

/** The Secrets and ConfigMaps in deploy/ that Tilt applies next to the chart (dev values refer to them). */
function deployObjects(): Doc[] {
  return readdirSync(join(ROOT, 'deploy'))
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(readFileSync(join(ROOT, 'deploy', f), 'utf8')).map((d) => d.toJS() as Doc))
    .filter((d) => d && (d.kind === 'Secret' || d.kind === 'ConfigMap'));
}

async function httpStatus(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
  return { status: res.status, body: await res.text() };
}

async function running(name: string): Promise<boolean> {
  const { stdout } = await podman(['inspect', '--format', '{{.State.Running}}', name], { allowFailure: true });
  return stdout.trim() === 'true';
}

async function logsOf(name: string): Promise<string> {
  const { stdout, stderr } = await podman(['logs', '--tail', '40', name], { allowFailure: true });
  return stdout + stderr;
}

/** Waits as the kubelet would: the startup probe within its budget, then readiness. */
async function waitProbes(name: string, c: PodContainer): Promise<void> {
  const ok = (probe: Probe) => async () => {
    if (!(await running(name))) throw new Error(`container ${name} stopped:\n${await logsOf(name)}`);
    return (await httpStatus(probe.port, probe.path)).status === 200;
  };
  const fatal = async (what: string, probe: Probe, budgetMs: number) => {
    try {
      await waitFor(what, ok(probe), budgetMs, 250);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- ${name} log:\n${await logsOf(name)}`);
    }
  };
  if (c.startup) await fatal(`${name} startup probe ${c.startup.path}`, c.startup, c.startup.periodSeconds * c.startup.failureThreshold * 1000);
  if (c.liveness) await fatal(`${name} liveness probe ${c.liveness.path}`, c.liveness, 10_000);
  if (c.readiness) await fatal(`${name} readiness probe ${c.readiness.path}`, c.readiness, 60_000);
}

async function removeContainers(): Promise<void> {
  const { stdout } = await podman(['ps', '-aq', '--filter', `label=falcon.test=${LABEL['falcon.test']}`], { allowFailure: true });
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await podman(['rm', '--force', '--time', '0', ...ids], { allowFailure: true });
}

describe('container image', function () {
  this.timeout(20 * 60_000);

  before(async () => {
    // Cached layers make this quick after the first run; the summary is the test's report.
    const report = await buildImages((line) => console.log(`      ${line}`));
    console.log(`      ${report.summary}`);
  });

  after(async () => {
    await removeContainers();
    rmSync(VOLUMES, { recursive: true, force: true });
  });

  it('runs as a numeric non-root user, so runAsNonRoot can verify it', async () => {
    for (const target of ['runtime', 'dev']) {
      const { stdout } = await podman(['image', 'inspect', '--format', '{{.Config.User}}', imageRef(target)]);
      expect(stdout.trim(), target).to.equal('1000:1000');
    }
  });

  it('ships only the uWebSockets.js binary its node loads, and loads it (not the JS fallback)', async () => {
    const runtime = imageRef('runtime');
    const { stdout: binaries } = await podman(['run', '--rm', ...PODMAN_QUIRKS, '--entrypoint', 'find', runtime, '/app', '-name', 'uws_*.node']);
    const { stdout: abi } = await podman(['run', '--rm', ...PODMAN_QUIRKS, runtime, '-p', 'process.platform + "_" + process.arch + "_" + process.versions.modules']);
    expect(binaries.trim().split('\n')).to.deep.equal([`/app/node_modules/uWebSockets.js/binaries/uws_${abi.trim()}.node`]);
    // The loader only warns when the binary fails to load, then serves from a JS fallback; a
    // loaded binary is mapped into the process. The fallback switch shows the check can fail.
    const mapped = async (env: string[]) =>
      (await podman(['run', '--rm', ...PODMAN_QUIRKS, ...env, '--workdir', '/app/services/realtime', runtime, '-e', 'require("uWebSockets.js"); process.stdout.write(require("fs").readFileSync("/proc/self/maps", "utf8"))'])).stdout;
    expect(await mapped([])).to.include(`uws_${abi.trim()}.node`);
    expect(await mapped(['--env', 'UWS_USE_FALLBACK=1'])).not.to.include('uws_');
  });

  describe('run as the chart runs it', function () {
    let db: Awaited<ReturnType<typeof isolate>>;
    let docs: Doc[];
    const containers = new Map<string, PodContainer>();
    const nameOf = (component: string) => `falcon-${RUN_ID}-${component}`;
    const url = (component: string) => {
      const c = containers.get(component)!;
      return `http://127.0.0.1:${c.ports['http'] ?? Object.values(c.ports)[0]}`;
    };

    before(async function () {
      db = await isolate('img');
      docs = renderChart(chartValues('runtime', db.databaseUrl, db.namespace));
      const { migrate, services } = workloads(docs);
      expect([...services.keys()].sort()).to.deep.equal([...SERVICES].sort());

      // The migration hook Job first, to completion within its deadline.
      const job = await podContainer(migrate, docs, nameOf('migrate'), LABEL, VOLUMES);
      expect(job.image).to.equal(imageRef('runtime'));
      const started = Date.now();
      const result = await podman(['run', ...job.runArgs, job.image, ...job.args], { allowFailure: true });
      expect(result.code, `migration failed:\n${result.stdout}${result.stderr}`).to.equal(0);
      if (job.activeDeadlineSeconds) expect(Date.now() - started).to.be.below(job.activeDeadlineSeconds * 1000);

      // Ingest first (it creates the stream the others wait for), then the rest together.
      for (const group of [['ingest'], ['persister', 'query', 'realtime']]) {
        await Promise.all(
          group.map(async (component) => {
            const c = await podContainer(services.get(component)!, docs, nameOf(component), LABEL, VOLUMES);
            containers.set(component, c);
            await podman(['run', '--detach', ...c.runArgs, c.image, ...c.args]);
            await waitProbes(nameOf(component), c);
          }),
        );
      }
    });

    after(async () => {
      await removeContainers();
      await db?.drop();
    });

    it('gets NATS, Postgres and the namespace from the chart values, not from a second copy', () => {
      for (const component of SERVICES) {
        const env = containers.get(component)!.env;
        expect(env['FALCON_NAMESPACE'], component).to.equal(db.namespace);
        if (component !== 'query') expect(env['NATS_URL'], component).to.equal(NATS_URL);
        if (component !== 'ingest' && component !== 'realtime') expect(env['DATABASE_URL'], component).to.equal(db.databaseUrl);
      }
    });

    it('passes the black-box e2e suite against the containers', async () => {
      const child = spawn('npm', ['run', '--silent', 'test:e2e'], {
        cwd: ROOT,
        env: { ...process.env, INGEST_URL: url('ingest'), QUERY_URL: url('query'), REALTIME_URL: url('realtime'), PERSISTER_URL: url('persister'), FALCON_TOKEN: await mintToken({ sub: 'image-test' }, JWT_SECRET) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      const [code] = (await once(child, 'close')) as [number | null];
      console.log(output.replace(/^/gm, '      | '));
      expect(code, 'npm run test:e2e against the containers').to.equal(0);
    });

    it('serves the gateway from the native uWebSockets.js binary', async () => {
      const { stdout: maps } = await podman(['exec', nameOf('realtime'), 'cat', '/proc/1/maps']);
      expect(maps).to.match(/\/uWebSockets\.js\/binaries\/uws_linux_[a-z0-9]+_\d+\.node$/m);
      expect(await logsOf(nameOf('realtime'))).not.to.include('Falling back');
    });

    it('writes nothing to the root filesystem', async () => {
      for (const component of SERVICES) {
        const { stdout } = await podman(['diff', '--format', 'json', nameOf(component)]);
        const changes = JSON.parse(stdout || '{}') as Record<string, string[]>;
        // What podman itself creates in every container (the kubelet's runtime does the same):
        // mount points for /etc/hosts, /etc/hostname, /etc/resolv.conf, the /etc/mtab link,
        // /run/.containerenv and the volumes' mount points; a change to their parents follows.
        const runtimeMade = new Set(['/etc', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/etc/mtab', '/run', '/run/.containerenv', '/tmp']);
        const writes = Object.values(changes).flat().filter((path) => !runtimeMade.has(path));
        expect(writes, component).to.deep.equal([]);
      }
    });

    it('exits 0 on SIGTERM, after the preStop hook, within the grace period', async () => {
      await Promise.all(
        SERVICES.map(async (component) => {
          const c = containers.get(component)!;
          const name = nameOf(component);
          const started = Date.now();
          // The kubelet runs preStop, then sends SIGTERM; both count against the grace period.
          if (c.preStop) await podman(['exec', name, ...c.preStop]);
          await podman(['kill', '--signal', 'TERM', name]);
          await waitFor(`${name} to exit after SIGTERM`, async () => !(await running(name)), c.terminationGracePeriodSeconds * 1000, 200);
          const elapsed = Date.now() - started;
          const { stdout } = await podman(['inspect', '--format', '{{.State.ExitCode}}', name]);
          expect(Number(stdout.trim()), `${component} exit code\n${await logsOf(name)}`).to.equal(0);
          expect(elapsed, component).to.be.below(c.terminationGracePeriodSeconds * 1000);
        }),
      );
    });
  });

  describe("Tilt's live update of the dev image", function () {
    let db: Awaited<ReturnType<typeof isolate>>;
    const dev = new Map<string, PodContainer>();
    const nameOf = (component: string) => `falcon-${RUN_ID}-dev-${component}`;

    before(async function () {
      db = await isolate('dev');
      const docs = [...renderChart(['-f', join(ROOT, 'deploy', 'falcon-values.dev.yaml'), ...chartValues('dev', db.databaseUrl, db.namespace)]), ...deployObjects()];
      // Ingest creates the stream the gateway waits for.
      for (const component of ['ingest', 'realtime']) {
        const c = await podContainer(workloads(docs).services.get(component)!, docs, nameOf(component), LABEL, VOLUMES);
        expect(c.image).to.equal(imageRef('dev'));
        dev.set(component, c);
        await podman(['run', '--detach', ...c.runArgs, c.image, ...c.args]);
        await waitProbes(nameOf(component), c);
      }
    });

    after(async () => {
      await podman(['rm', '--force', '--time', '0', ...[...dev.keys()].map(nameOf)], { allowFailure: true });
      await db?.drop();
    });

    /**
     * What Tilt does for one changed file: an archive with one entry at the file's container
     * path (owner 0), `tar -C / -x -f -` exec'd as the container's user, then every run() step
     * the file triggers, per the Tiltfile.
     */
    async function liveUpdate(component: string, changed: string, content: string): Promise<void> {
      const name = nameOf(component);
      const live = tiltLiveUpdate(readFileSync(join(ROOT, 'Tiltfile'), 'utf8'));
      const sync = live.syncs.find((s) => changed.startsWith(`${s.local}/`));
      expect(sync, `a Tiltfile sync() covering ${changed}`).to.not.equal(undefined);
      const containerPath = `${sync!.remote}${changed.slice(sync!.local.length)}`.replace(/^\//, '');
      const staging = mkdtempSync(join(tmpdir(), 'falcon-live-update-'));
      mkdirSync(join(staging, containerPath, '..'), { recursive: true });
      writeFileSync(join(staging, containerPath), content);
      const archive = await new Promise<Buffer>((resolve, reject) => {
        const tar = spawn('tar', ['-C', staging, '-c', '--owner=0', '--group=0', '--no-recursion', containerPath], { stdio: ['ignore', 'pipe', 'inherit'] });
        const parts: Buffer[] = [];
        tar.stdout.on('data', (chunk: Buffer) => parts.push(chunk));
        tar.once('close', (code) => (code === 0 ? resolve(Buffer.concat(parts)) : reject(new Error(`tar exited ${code}`))));
      });
      rmSync(staging, { recursive: true, force: true });

      const { stdout: uid } = await podman(['exec', name, 'id', '-u']);
      expect(uid.trim(), 'the user Tilt execs as').to.equal('1000');
      const untar = await podman(['exec', '-i', name, 'tar', '-C', '/', '-x', '-f', '-'], { input: archive, allowFailure: true });
      expect(untar.code, `tar into the container: ${untar.stderr}`).to.equal(0);
      const steps = live.runs.filter((r) => r.triggers.length === 0 || r.triggers.some((t) => changed === t || changed.startsWith(`${t}/`)));
      for (const step of steps) {
        const run = await podman(['exec', name, 'sh', '-c', step.command], { allowFailure: true });
        expect(run.code, `${step.command}: ${run.stdout}${run.stderr}`).to.equal(0);
      }
    }

    it('syncs a changed source file as the pod user, recompiles it and the service serves the change', async () => {
      const changed = 'services/shared/src/platform/ops.ts';
      const token = `live-${RUN_ID}`;
      const original = readFileSync(join(ROOT, changed), 'utf8');
      const alive = `'{"status":"alive"}'`;
      expect(original, `${changed} no longer answers ${alive}; pick another change`).to.include(alive);
      await liveUpdate('ingest', changed, original.replace(alive, `'{"status":"alive","build":"${token}"}'`));
      // node --watch (dev values) restarts the service on the rebuilt output.
      const port = dev.get('ingest')!.liveness!.port;
      await waitFor('ingest to answer with the live-updated code', async () => (await httpStatus(port, '/healthz')).body.includes(token), 60_000, 250);
    });

    it('syncs an edit of the live page and the gateway serves it', async () => {
      const changed = 'web/index.html';
      const token = `live-page-${RUN_ID}`;
      await liveUpdate('realtime', changed, `${readFileSync(join(ROOT, changed), 'utf8')}<!-- ${token} -->\n`);
      const c = dev.get('realtime')!;
      const port = c.ports['http'] ?? Object.values(c.ports)[0]!;
      await waitFor('the gateway to serve the edited page', async () => (await httpStatus(port, '/')).body.includes(token), 60_000, 250);
    });
  });
});

/** The live_update steps of the Tiltfile's docker_build: sync(local, remote) and run(cmd, trigger). */
function tiltLiveUpdate(tiltfile: string) {
  const str = `'([^']*)'|"([^"]*)"`;
  const syncs = [...tiltfile.matchAll(new RegExp(`sync\\(\\s*(?:${str})\\s*,\\s*(?:${str})\\s*\\)`, 'g'))].map((m) => ({
    local: (m[1] ?? m[2])!.replace(/^\.\//, '').replace(/\/$/, ''),
    remote: (m[3] ?? m[4])!.replace(/\/$/, ''),
  }));
  const runs = [...tiltfile.matchAll(new RegExp(`\\brun\\(\\s*(?:${str})\\s*(?:,\\s*trigger\\s*=\\s*\\[([^\\]]*)\\])?\\s*\\)`, 'g'))].map((m) => ({
    command: (m[1] ?? m[2])!,
    triggers: [...(m[3] ?? '').matchAll(/'([^']*)'|"([^"]*)"/g)].map((t) => (t[1] ?? t[2])!.replace(/^\.\//, '').replace(/\/$/, '')),
  }));
  if (syncs.length === 0) throw new Error('no sync() steps found in the Tiltfile');
  return { syncs, runs };
}
