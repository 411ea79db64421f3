/**
 * podman as this project's CI machines need it. Each flag works around something verified on
 * them, and is harmless elsewhere:
 * - `--runtime runc`: crun refuses the hybrid cgroup v1/v2 layout of these VMs;
 * - the ulimits: root cannot raise rlimits here, so the OCI defaults (above the hard limit)
 *   fail container creation; these fit under it;
 * - `--network=host`: no CNI/netavark networking, and the tests reach the containers (and the
 *   containers reach NATS and Postgres) on 127.0.0.1.
 */
import { spawn, type SpawnOptions } from 'node:child_process';

export const PODMAN_QUIRKS = ['--runtime', 'runc', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768', '--network=host'];

export interface PodmanResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `podman <args>`; rejects with its stderr unless `allowFailure`. */
export function podman(args: string[], options: { input?: Buffer | string; allowFailure?: boolean; onOutput?: (chunk: Buffer) => void } & Pick<SpawnOptions, 'cwd'> = {}): Promise<PodmanResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('podman', args, { cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      out.push(chunk);
      options.onOutput?.(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err.push(chunk);
      options.onOutput?.(chunk);
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const result = { code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (result.code !== 0 && !options.allowFailure) reject(new Error(`podman ${args.join(' ')} exited ${result.code}: ${result.stderr.trim().slice(-2000)}`));
      else resolve(result);
    });
    child.stdin.end(options.input);
  });
}

export async function imageSize(image: string): Promise<number> {
  const { stdout } = await podman(['image', 'inspect', '--format', '{{.Size}}', image]);
  return Number(stdout.trim());
}

export const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;
