/**
 * One compiled service as its own process, as it ships (services/<name>/dist/main.js, so
 * `tsc -b` first): tests see its real probes, logs and exit codes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort, ROOT, waitFor, type ServiceName } from '../scripts/stack.js';

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface ServiceRun {
  child: ChildProcess;
  port: number;
  url: string;
  /** Every stdout line that is JSON, in order. */
  logs: LogLine[];
  /** Anything on stderr (a service should print nothing there). */
  stderr: string[];
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  /** Sends a signal (SIGTERM by default) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

const running = new Set<ChildProcess>();

export async function spawnService(service: ServiceName, env: Record<string, string>): Promise<ServiceRun> {
  const port = env['PORT'] ? Number(env['PORT']) : await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'services', service, 'dist', 'main.js')], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', LOG_LEVEL: 'info', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      stderr.push(`stdout, not JSON: ${line}`);
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? -1);
    }),
  );
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    logs,
    stderr,
    exited,
    stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    async waitForLog(what, match, timeoutMs = 20_000) {
      await waitFor(what, () => logs.some(match), timeoutMs, 20);
      return logs.find(match)!;
    },
  };
}

/** Kills whatever a test left running (an afterEach safety net; tests stop their own). */
export async function killServices(): Promise<void> {
  await Promise.all(
    [...running].map((child) => {
      const ended = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      return ended;
    }),
  );
}
