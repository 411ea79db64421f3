import type { ServerResponse } from 'node:http';

export interface ExportLimits {
  /** Full exports streaming at once; beyond it, 503. Below the pool size, so lookups keep a connection. */
  maxConcurrent: number;
  /** Postgres' statement_timeout for one export. */
  statementTimeoutMs: number;
  /** A reader that takes nothing for this long is cut off. */
  stallTimeoutMs: number;
  /** Retry-After on the 503 when every export slot is taken. */
  retryAfterSeconds: number;
}

export const DEFAULT_EXPORT_LIMITS: ExportLimits = {
  maxConcurrent: 2,
  statementTimeoutMs: 15 * 60_000,
  stallTimeoutMs: 30_000,
  retryAfterSeconds: 5,
};

export interface Slots {
  /** A release function, or undefined when every slot is taken. */
  tryAcquire(): (() => void) | undefined;
  readonly inUse: number;
}

/** A counting semaphore that never queues: a caller either gets a slot now or is refused. */
export function createSlots(size: number): Slots {
  let inUse = 0;
  return {
    tryAcquire() {
      if (inUse >= size) return undefined;
      inUse += 1;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        inUse -= 1;
      };
    },
    get inUse() {
      return inUse;
    },
  };
}

/**
 * Destroys the response when its writes have been held up for `stallMs`: the socket's buffer
 * stays full (Node reports it through writableNeedDrain) and no 'drain' came. A reader that is
 * merely slow drains now and then and is left alone; one that stopped reading would otherwise
 * hold its export's database connection until the statement timeout.
 */
export function cutOffStalledReader(res: ServerResponse, stallMs: number, onCut: () => void): void {
  let stalledSince: number | undefined;
  const onDrain = () => {
    stalledSince = undefined;
  };
  const check = setInterval(() => {
    if (!res.writableNeedDrain) {
      stalledSince = undefined;
      return;
    }
    stalledSince ??= Date.now();
    if (Date.now() - stalledSince >= stallMs) {
      stop();
      onCut();
      res.destroy();
    }
  }, Math.max(10, Math.min(1_000, Math.floor(stallMs / 4))));
  check.unref();
  const stop = () => {
    clearInterval(check);
    res.off('drain', onDrain);
  };
  res.on('drain', onDrain);
  res.once('close', stop);
}
