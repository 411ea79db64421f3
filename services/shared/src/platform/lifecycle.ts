import type { Logger } from 'pino';

/** What the life cycle needs of `process`; tests pass an EventEmitter. */
export interface ProcessEvents {
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

export interface LifecycleOptions {
  log: Logger;
  /** Hard deadline for the whole stop; past it the process exits 1. */
  timeoutMs: number;
  /** Runs first when a stop begins (turn /readyz to 503). */
  onDraining?: () => void;
  exit?: (code: number) => void;
  process?: ProcessEvents;
  signals?: NodeJS.Signals[];
}

export interface Lifecycle {
  /** Aborted as soon as the stop begins: every wait, retry and reconnect listens to it. */
  readonly signal: AbortSignal;
  isStopping(): boolean;
  /** Registers a component's stop as it starts; the stop runs them in reverse order. */
  onStop(name: string, stop: () => unknown): void;
  /** A requested stop (SIGTERM): drain, then exit 0 (1 if a step failed). */
  stop(reason: string): Promise<number>;
  /** A failure: logged once as fatal, drained as far as possible, then exit 1. */
  fail(reason: string, err?: unknown): Promise<number>;
  /** A component that must run until the stop: if `done` settles before, that is a failure. */
  watch(name: string, done: Promise<unknown>): void;
  /** The exit code, once the stop has finished. */
  readonly exited: Promise<number>;
}

/**
 * One exit rule for every service: SIGTERM or SIGINT drains and exits 0; a failure (a
 * component that ended, an unhandled rejection, an uncaught exception, a start-up error) is
 * logged once as fatal, drains what it can and exits 1, so Kubernetes restarts the pod and
 * its events say why. A stop that outlives `timeoutMs` exits 1.
 */
export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const log = options.log;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const proc = options.process ?? process;
  const controller = new AbortController();
  const stops: { name: string; stop: () => unknown }[] = [];
  let running: Promise<number> | undefined;
  let failed = false;
  let resolveExited!: (code: number) => void;
  const exited = new Promise<number>((resolve) => {
    resolveExited = resolve;
  });

  const onSignal = (signal: NodeJS.Signals) => void stop(signal);
  const signalListeners = (options.signals ?? ['SIGTERM', 'SIGINT']).map((signal) => [signal, () => onSignal(signal)] as const);
  const onRejection = (err: unknown) => void fail('unhandled rejection', err);
  const onException = (err: unknown) => void fail('uncaught exception', err);

  function detach(): void {
    for (const [signal, listener] of signalListeners) proc.off(signal, listener);
    proc.off('unhandledRejection', onRejection);
    proc.off('uncaughtException', onException);
  }

  function run(reason: string): Promise<number> {
    running ??= (async () => {
      log.info({ reason, timeoutMs: options.timeoutMs }, 'shutting down');
      const deadline = setTimeout(() => {
        log.error({ timeoutMs: options.timeoutMs }, 'shutdown deadline passed, exiting');
        finish(1);
      }, options.timeoutMs);
      controller.abort(reason);
      try {
        options.onDraining?.();
      } catch (err) {
        log.error({ err }, 'marking not ready failed');
      }
      let stepFailed = false;
      for (const { name, stop } of stops.splice(0).reverse()) {
        try {
          await stop();
          log.debug({ step: name }, 'stopped');
        } catch (err) {
          stepFailed = true;
          log.error({ err, step: name }, 'stop step failed');
        }
      }
      clearTimeout(deadline);
      const code = failed || stepFailed ? 1 : 0;
      log.info({ code }, 'shutdown complete');
      return finish(code);
    })();
    return running;
  }

  let finished = false;
  function finish(code: number): number {
    if (!finished) {
      finished = true;
      detach();
      resolveExited(code);
      exit(code);
    }
    return code;
  }

  function stop(reason: string): Promise<number> {
    return run(reason);
  }

  function fail(reason: string, err?: unknown): Promise<number> {
    if (!failed) {
      failed = true;
      // After a requested stop has begun, the failure still turns the exit code to 1.
      log.fatal({ err, reason }, 'service failed');
    } else {
      log.error({ err, reason }, 'another failure while stopping');
    }
    return run(reason);
  }

  for (const [signal, listener] of signalListeners) proc.on(signal, listener);
  proc.on('unhandledRejection', onRejection);
  proc.on('uncaughtException', onException);

  return {
    signal: controller.signal,
    isStopping: () => running !== undefined,
    onStop(name, stopFn) {
      if (running) {
        // Started while the stop was under way: stop it at once rather than never.
        void Promise.resolve()
          .then(stopFn)
          .catch((err: unknown) => log.error({ err, step: name }, 'stop step failed'));
        return;
      }
      stops.push({ name, stop: stopFn });
    },
    stop,
    fail,
    watch(name, done) {
      done.then(
        () => {
          if (!running) void fail(`${name} ended`);
        },
        (err: unknown) => {
          if (!running) void fail(`${name} failed`, err);
          else log.warn({ err, component: name }, 'component failed while stopping');
        },
      );
    },
    exited,
  };
}
