/**
 * Well-behaved client traffic for the fault suite: every message has its own Idempotency-Key
 * and is retried with that key (after a 503, a timeout or a refused connection) until it gets
 * a 202. What it records is what a reconciliation must find stored and pushed exactly once.
 */
import type { Accepted } from './client.js';

export interface TrafficResult {
  accepted: Map<string, Accepted>;
  statuses: Record<string, number>;
  retries: number;
}

export interface Traffic {
  /** Stops issuing new messages, finishes the ones in flight (retrying until accepted). */
  stop(): Promise<TrafficResult>;
  /** Waits until all `max` messages are accepted. */
  finished(): Promise<TrafficResult>;
  acceptedCount(): number;
}

export function startTraffic(ingestUrl: () => string, options: { concurrency: number; prefix: string; max?: number; timeoutMs?: number }): Traffic {
  const accepted = new Map<string, Accepted>();
  const statuses: Record<string, number> = {};
  let retries = 0;
  let next = 0;
  let stopping = false;
  const count = (key: string) => {
    statuses[key] = (statuses[key] ?? 0) + 1;
  };

  async function send(key: string, i: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) retries += 1;
      try {
        const res = await fetch(`${ingestUrl()}/api/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ key, i }),
          signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
        });
        count(String(res.status));
        if (res.status === 202) {
          accepted.set(key, (await res.json()) as Accepted);
          return;
        }
        await res.arrayBuffer();
        if (res.status !== 503) throw new Error(`unexpected ${res.status} for ${key}`);
        const after = Number(res.headers.get('retry-after') ?? '1');
        await new Promise((r) => setTimeout(r, Math.min(after * 1000, 250)));
      } catch (err) {
        if ((err as Error).message.startsWith('unexpected')) throw err;
        count('network');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  const workers = Array.from({ length: options.concurrency }, async () => {
    while (!stopping && (options.max === undefined || next < options.max)) {
      const i = next++;
      await send(`${options.prefix}-${i}`, i);
    }
  });

  return {
    acceptedCount: () => accepted.size,
    async stop() {
      stopping = true;
      await Promise.all(workers);
      return { accepted, statuses, retries };
    },
    async finished() {
      await Promise.all(workers);
      return { accepted, statuses, retries };
    },
  };
}
