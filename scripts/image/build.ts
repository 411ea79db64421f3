/**
 * Builds Falcon's image with podman: the base image first (scripts/image/base.sh, cached by its
 * recipe), then every target of the Dockerfile, tagging `dev` (Tilt's live_update image) and
 * `runtime` (what the chart deploys) as localhost/falcon:<target>. Layers are cached between
 * runs. Build logs go to .falcon/logs/image/; the summary (times, sizes) is returned and printed.
 *
 *   node --import tsx scripts/image/build.ts
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../stack.js';
import { imageSize, mib, podman, PODMAN_QUIRKS } from './podman.js';

export const IMAGE_REPOSITORY = 'localhost/falcon';
export const imageRef = (target: string) => `${IMAGE_REPOSITORY}:${target}`;
const TAGGED = ['dev', 'runtime'];
const LOGS = join(ROOT, '.falcon', 'logs', 'image');
// The host's CA bundle, for npm behind a TLS-intercepting proxy (a build secret: see Dockerfile).
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export interface BuildReport {
  baseSeconds: number;
  /** Seconds per target, in Dockerfile order. */
  targets: { target: string; seconds: number }[];
  sizes: Record<string, number>;
  summary: string;
}

/** The Dockerfile's stage names, in order: every one of them is a build target. */
export function dockerfileTargets(dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')): string[] {
  return [...dockerfile.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)\s*$/gim)].map((m) => m[1]!);
}

async function runLogged(command: string, args: string[], logFile: string): Promise<void> {
  const log = createWriteStream(logFile);
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const [code] = (await once(child, 'close')) as [number | null];
  log.end();
  await once(log, 'close');
  if (code !== 0) {
    const tail = readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    throw new Error(`${command} ${args.join(' ')} exited ${code}; last lines of ${logFile}:\n${tail}`);
  }
}

export async function buildImages(log: (line: string) => void = () => {}): Promise<BuildReport> {
  mkdirSync(LOGS, { recursive: true });
  let started = Date.now();
  await runLogged('bash', [join(ROOT, 'scripts', 'image', 'base.sh')], join(LOGS, 'base.log'));
  const baseSeconds = (Date.now() - started) / 1000;
  log(`base image ready in ${baseSeconds.toFixed(1)} s (log: ${join(LOGS, 'base.log')})`);

  const targets: BuildReport['targets'] = [];
  for (const target of dockerfileTargets()) {
    started = Date.now();
    const args = ['build', ...PODMAN_QUIRKS, '--pull=never', '--layers', '--target', target, '-f', 'Dockerfile'];
    if (existsSync(CA_BUNDLE)) args.push('--secret', `id=npm-ca,src=${CA_BUNDLE}`);
    if (TAGGED.includes(target)) args.push('-t', imageRef(target));
    await runLogged('podman', [...args, '.'], join(LOGS, `build-${target}.log`));
    const seconds = (Date.now() - started) / 1000;
    targets.push({ target, seconds });
    log(`target ${target} built in ${seconds.toFixed(1)} s`);
  }
  const sizes: Record<string, number> = { base: await imageSize('docker.io/library/node:20-bookworm-slim') };
  for (const target of TAGGED) sizes[target] = await imageSize(imageRef(target));
  const total = targets.reduce((sum, t) => sum + t.seconds, 0);
  const summary =
    `image build: base ${baseSeconds.toFixed(1)} s, targets ${total.toFixed(1)} s ` +
    `(${targets.map((t) => `${t.target} ${t.seconds.toFixed(1)} s`).join(', ')}); ` +
    `sizes: ${Object.entries(sizes).map(([name, bytes]) => `${name} ${mib(bytes)}`).join(', ')}`;
  return { baseSeconds, targets, sizes, summary };
}

// No top-level await: the test imports this module, and mocha may load it through require().
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  buildImages((line) => console.log(line)).then(
    (report) => console.log(report.summary),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
