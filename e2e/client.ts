/** Small HTTP helpers for the black-box suite: only public URLs, only the contract. */
export interface Accepted {
  id: string;
  seq: number;
  receivedAt: string;
  duplicate: boolean;
}

export async function postMessage(ingest: string, payload: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Accepted; res: Response }> {
  const res = await fetch(`${ingest}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
  return { status: res.status, body: (await res.json()) as Accepted, res };
}

/** Runs `count` tasks with at most `concurrency` in flight. */
export async function inParallel<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

export interface Persisted {
  id: string;
  seq: number;
  receivedAt: string;
  persistedAt: string;
  payload: unknown;
}

/** Every persisted message with seq > after, following Link rel="next". */
export async function listAfter(query: string, after: number, limit = 1000): Promise<Persisted[]> {
  const out: Persisted[] = [];
  let url: string | undefined = `${query}/api/messages?after=${after}&limit=${limit}`;
  while (url) {
    const res: Response = await fetch(url);
    if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
    out.push(...((await res.json()) as Persisted[]));
    const link = res.headers.get('link');
    const next = link ? /<([^>]+)>;\s*rel="next"/.exec(link)?.[1] : undefined;
    url = next ? new URL(next, query).toString() : undefined;
  }
  return out;
}
