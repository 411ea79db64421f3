import type { Logger } from 'pino';

export interface ShutdownStep {
  name: string;
  run: () => unknown;
}

export interface ShutdownOptions {
  log: Logger;
  timeoutMs: number;
  /** In start-up order; they run in reverse. */
  steps: ShutdownStep[];
  exit?: (code: number) => void;
  signals?: NodeJS.Signals[];
}

/**
 * On SIGTERM or SIGINT, runs the steps in reverse order of start-up, each awaited, then exits 0.
 * A hard deadline exits 1 so a stuck step never outlives Kubernetes' grace period silently.
 * Returns the trigger so tests and embedding code can start the same sequence.
 */
export function onShutdown(options: ShutdownOptions): (reason: string) => Promise<void> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let running: Promise<void> | undefined;

  const shutdown = (reason: string): Promise<void> => {
    if (running) return running;
    options.log.info({ reason, timeoutMs: options.timeoutMs }, 'shutting down');
    const deadline = setTimeout(() => {
      options.log.error({ timeoutMs: options.timeoutMs }, 'shutdown deadline passed, exiting');
      exit(1);
    }, options.timeoutMs);
    deadline.unref();
    running = (async () => {
      let failed = false;
      for (const step of [...options.steps].reverse()) {
        try {
          await step.run();
          options.log.debug({ step: step.name }, 'shutdown step done');
        } catch (err) {
          failed = true;
          options.log.error({ err, step: step.name }, 'shutdown step failed');
        }
      }
      clearTimeout(deadline);
      options.log.info({ failed }, 'shutdown complete');
      exit(failed ? 1 : 0);
    })();
    return running;
  };

  for (const signal of options.signals ?? ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => void shutdown(signal));
  }
  return shutdown;
}
