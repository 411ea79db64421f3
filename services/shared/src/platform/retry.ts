/**
 * Sleeps, backoff schedules and retries, all cancellable: a stop aborts the signal and every
 * wait ends at once instead of holding the shutdown for a backoff.
 */

export class AbortedError extends Error {
  constructor(reason?: unknown) {
    super(typeof reason === 'string' ? reason : 'aborted');
    this.name = 'AbortedError';
  }
}

export function isAborted(err: unknown): boolean {
  return err instanceof AbortedError || (err as { name?: unknown } | null)?.name === 'AbortError';
}

/** Resolves after `ms`, or rejects with AbortedError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Rejects with AbortedError when `signal` aborts first; otherwise settles as `work` does. */
export function abortable<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(new AbortedError(signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

export interface BackoffOptions {
  /** First delay. */
  initialMs: number;
  /** Upper bound on any delay. */
  maxMs: number;
  /** Growth per attempt (2 doubles). */
  factor?: number;
}

/** The delay before retry number `attempt` (1 for the first retry): initial * factor^(attempt-1), capped. */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const factor = options.factor ?? 2;
  const exponent = Math.max(0, Math.min(attempt - 1, 30));
  return Math.min(options.maxMs, options.initialMs * factor ** exponent);
}

/** A schedule that grows with each failure and starts over after a success. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** The next delay, growing. */
  next(): number {
    this.attempt += 1;
    return backoffDelay(this.attempt, this.options);
  }

  reset(): void {
    this.attempt = 0;
  }

  /** Waits the next delay; rejects with AbortedError if the signal aborts first. */
  wait(signal?: AbortSignal): Promise<void> {
    return sleep(this.next(), signal);
  }
}

export interface RetryOptions extends BackoffOptions {
  signal?: AbortSignal;
  /** Called after each failed attempt, before the wait (log it here). */
  onFailure?: (err: unknown, attempt: number, retryInMs: number) => void;
  /** Whether an error is worth another attempt; a false answer rethrows at once. */
  retryable?: (err: unknown) => boolean;
}

/** Runs `attempt` until it succeeds, waiting a growing delay between failures. */
export async function retry<T>(attempt: (n: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const backoff = new Backoff(options);
  for (let n = 1; ; n++) {
    if (options.signal?.aborted) throw new AbortedError(options.signal.reason);
    try {
      return await abortable(attempt(n), options.signal);
    } catch (err) {
      if (isAborted(err) || options.signal?.aborted) throw err instanceof AbortedError ? err : new AbortedError(options.signal?.reason);
      if (options.retryable && !options.retryable(err)) throw err;
      const delay = backoff.next();
      options.onFailure?.(err, n, delay);
      await sleep(delay, options.signal);
    }
  }
}
