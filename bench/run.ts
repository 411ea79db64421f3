/**
 * `npm run bench`: Falcon against the simplest programs that do the same jobs with the same
 * packages, measured side by side in one run on this machine, written to
 * bench/results/latest.{md,json}. Baseline and Falcon runs alternate (A, B, A, B) so that the
 * noise of a shared machine lands on both. `--smoke` runs the same code paths with tiny counts
 * in a few seconds (part of npm test, so the benchmark cannot rot). `--only a,b` runs some
 * sections; `--profile` runs the whole pipeline once under load with every service under
 * `node --cpu-prof` and prints each one's top self-time frames.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, nuid } from '@nats-io/transport-node';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { DEFAULT_STREAM_OPTIONS, encodeEnvelope, ensureMessagesStream, falconNames, newMessageId, type FalconNames } from '@falcon/shared';
import { startLocalStack, wsUrl, type LocalStack } from '../e2e/target.js';
import { ensureInfra, freePort, ROOT, waitFor } from '../scripts/stack.js';
import { summarizeProfiles } from './profile-summary.js';

const SECTIONS = ['ingest', 'persister', 'pipeline', 'latency', 'fanout', 'query'] as const;
type Section = (typeof SECTIONS)[number];
const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    only: { type: 'string' },
    rounds: { type: 'string' },
    backlog: { type: 'string' },
    out: { type: 'string' },
  },
});
const SMOKE = args.smoke;
const PROFILE = args.profile;
const N = SMOKE
  ? { seconds: 1, rounds: 1, persist: 2_000, batch: 1000, latencyRate: 100, latencySeconds: 1, fanoutClients: 20, fanoutSeconds: 1, queryRows: 2_000 }
  : { seconds: 8, rounds: 2, persist: 100_000, batch: 1000, latencyRate: 500, latencySeconds: 10, fanoutClients: 1000, fanoutSeconds: 10, queryRows: 200_000 };
if (args.rounds || PROFILE) N.rounds = Number(args.rounds ?? 1);
if (args.backlog) N.persist = Number(args.backlog);
const CONNECTIONS = PROFILE ? [16] : [16, 50];
const only = new Set<Section>((args.only?.split(',') ?? (PROFILE ? ['pipeline'] : SECTIONS)) as Section[]);
const OUT = args.out ?? (SMOKE || PROFILE || args.only ? join(tmpdir(), 'falcon-bench') : join(ROOT, 'bench', 'results'));

interface Row {
  name: string;
  value: number;
  unit: string;
  baseline?: string;
  baselineValue?: number;
  ratio?: number;
  target?: string;
  met?: boolean;
  note?: string;
}
const rows: Row[] = [];
const load = {
  tool: 'autocannon (keep-alive), a fresh ~150-byte JSON body per request',
  connections: CONNECTIONS,
  secondsPerRun: N.seconds,
  rounds: N.rounds,
  order: 'baseline and Falcon alternate within each round; a ratio is the sum over rounds of Falcon over the sum of the baseline',
  backlog: N.persist,
  persisterBatch: N.batch,
  latencyRate: N.latencyRate,
};
const cpuRows: { name: string; cpuPer1k: number; note: string }[] = [];
const started = Date.now();
const say = (line: string) => process.stdout.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
const round = (n: number, digits = 0) => Number(n.toFixed(digits));
const payloadText = (t = 0) => `{"t":${t},"text":"benchmark message","user":"ada","tags":["a","b"],"pad":"${'x'.repeat(64)}"}`;

function child(script: string, argv: string[]): { proc: ChildProcess; next: (type: string) => Promise<Record<string, number>> } {
  const proc = fork(join(ROOT, 'bench', script), argv, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = (type: string) =>
    new Promise<Record<string, number>>((resolve, reject) => {
      const onMessage = (msg: { type: string }) => {
        if (msg.type === type) {
          proc.off('message', onMessage);
          resolve(msg as unknown as Record<string, number>);
        }
      };
      proc.on('message', onMessage);
      proc.once('exit', (code) => reject(new Error(`${script} exited (${code}) before ${type}`)));
    });
  return { proc, next };
}

/** `count` connections, of which `measure` parse frames and record latency (see ws-clients.ts). */
async function wsClients(url: string, count: number, measure = Math.min(count, 20)) {
  const c = child('ws-clients.ts', [url, String(count), String(measure)]);
  await c.next('ready');
  return {
    report: async () => {
      c.proc.send({ type: 'report' });
      return (await c.next('report')) as { frames: number; p50: number; p99: number; max: number };
    },
    reset: async () => {
      c.proc.send({ type: 'reset' });
      await c.next('reset');
    },
    close: async () => {
      c.proc.send({ type: 'close' });
      await once(c.proc, 'exit');
    },
  };
}

function cannon(url: string, opts: { seconds: number; connections: number }) {
  return autocannon({
    url: `${url}/api/messages`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    duration: opts.seconds,
    connections: opts.connections,
    requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, body: payloadText(Math.random()) }) }],
  });
}

const accepted = (r: autocannon.Result) => r.statusCodeStats?.['202']?.count ?? 0;

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return 0;
  }
}

/** Postgres backend pids serving one database (its own connections; WAL writer etc. excluded). */
async function backendPids(db: pg.Pool): Promise<number[]> {
  const { rows: r } = await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
  return r.map((x) => x.pid);
}

/** Average messages per batch a persister has written since it started, from its /metrics. */
async function batchSizes(persisterUrl: string): Promise<number> {
  const text = await (await fetch(`${persisterUrl}/metrics`)).text();
  // Lines look like `name{service="persister",version="..."} 1234`.
  const value = (name: string) => Number(text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))?.split(' ').pop() ?? NaN);
  return value('falcon_persister_batch_size_sum') / value('falcon_persister_batch_size_count');
}

/** Pids of the NATS server(s) on this machine (shared with whoever else uses them). */
function natsServerPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'nats-server';
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** CPU seconds so far of the Postgres backends serving connections with this application_name. */
async function backendCpu(db: pg.Pool, applicationName: string): Promise<number> {
  const { rows: r } = await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [applicationName]);
  return r.reduce((sum, x) => sum + cpuSeconds(x.pid), 0);
}

/** Sums CPU seconds of named process groups between start() and stop(). */
function cpuMeter(groups: Record<string, () => number[]>) {
  const before = new Map<string, number>();
  const total = (name: string) => groups[name]!().reduce((s, pid) => s + cpuSeconds(pid), 0);
  return {
    start() {
      for (const name of Object.keys(groups)) before.set(name, total(name));
    },
    stop(): Record<string, number> {
      return Object.fromEntries(Object.keys(groups).map((name) => [name, total(name) - (before.get(name) ?? 0)]));
    },
  };
}

/**
 * POSTs at a fixed rate with each payload's `t` stamped immediately before its request is
 * written (autocannon stamps requests when it prepares them, which can be well before its rate
 * limiter sends them). Keep-alive sockets, up to 64 requests in flight.
 */
async function pacedPost(ingest: string, rate: number, seconds: number): Promise<{ accepted: number; failed: number; duration: number }> {
  const target = new URL(`${ingest}/api/messages`);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const total = Math.round(rate * seconds);
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let inFlight = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const post = () => {
      const body = payloadText(performance.timeOrigin + performance.now());
      inFlight += 1;
      const req = httpRequest(
        { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => {
            inFlight -= 1;
            if (res.statusCode === 202) ok += 1;
            else failed += 1;
            if (sent === total && inFlight === 0) resolve();
          });
        },
      );
      req.on('error', () => {
        inFlight -= 1;
        failed += 1;
        if (sent === total && inFlight === 0) resolve();
      });
      req.end(body);
    };
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      while (sent < due && inFlight < 64) {
        sent += 1;
        post();
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  agent.destroy();
  return { accepted: ok, failed, duration: (performance.now() - t0) / 1000 };
}

/** Publishes envelopes until the consumer (or the stream, before the consumer exists) has `count` waiting. */
async function topUp(js: JetStreamClient, jsm: JetStreamManager, names: FalconNames, consumer: string, count: number): Promise<number> {
  const info = await jsm.consumers.info(names.stream, consumer).catch(() => undefined);
  const waiting = info ? info.num_pending : (await jsm.streams.info(names.stream)).state.messages;
  let flight: Promise<unknown>[] = [];
  for (let i = waiting; i < count; i++) {
    flight.push(js.publish(names.subject, encodeEnvelope(newMessageId(), new Date().toISOString(), payloadText())));
    if (flight.length >= 1000) {
      await Promise.all(flight);
      flight = [];
    }
  }
  await Promise.all(flight);
  return Math.max(waiting, count);
}

async function drained(jsm: JetStreamManager, stream: string, consumer: string): Promise<boolean> {
  const i = await jsm.consumers.info(stream, consumer);
  return i.num_pending + i.num_ack_pending === 0;
}

/** Ratio row from per-round Falcon and baseline figures: sums over rounds, so each round weighs its length. */
function ratioRow(name: string, unit: string, falcon: number[], baseline: number[], baselineName: string, target: number, note: string): Row {
  const f = falcon.reduce((a, b) => a + b, 0) / falcon.length;
  const b = baseline.reduce((a, c) => a + c, 0) / baseline.length;
  const perRound = falcon.map((x, i) => (x / baseline[i]!).toFixed(2)).join(', ');
  return {
    name,
    value: round(f),
    unit,
    baseline: `${baselineName}: ${round(b).toLocaleString('en-US')} ${unit}`,
    baselineValue: round(b),
    ratio: f / b,
    target: `>= ${target.toFixed(1)}`,
    met: f / b >= target,
    note: `${note}${falcon.length > 1 ? `; per round ${perRound}` : ''}`,
  };
}

async function main(): Promise<void> {
  const infra = await ensureInfra(process.env, say);
  const nc = await connect({ servers: infra.natsUrl.split(',') });
  measuredVersions['nats-server'] = nc.info?.version ?? 'unknown';
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const id = nuid.next().toLowerCase().slice(-8);
  const simpleNames = falconNames(`bench${id}simple`);
  const simpleConsumer = `bench${id}simple`;
  let stack: LocalStack | undefined;
  const stops: (() => Promise<unknown>)[] = [];
  const profileDir = join(OUT, 'profiles', new Date().toISOString().replace(/[:.]/g, '-'));

  try {
    say('starting the Falcon stack (ingest and query; the persister and the gateway join later)');
    stack = await startLocalStack({
      replicas: { persister: 0, realtime: 0 },
      nodeArgs: PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    });
    const s = stack;
    const names = falconNames(s.stack.namespace);
    const db = new pg.Pool({ connectionString: s.databaseUrl, max: 2 });
    stops.push(() => db.end());
    measuredVersions['postgres'] = String((await db.query('SHOW server_version')).rows[0].server_version);
    // The simplest persister writes into a table shaped like Falcon's: the same columns and
    // keys, partitioned by day with today's and tomorrow's partitions and a default.
    await db.query('CREATE TABLE simple_messages (LIKE messages INCLUDING ALL) PARTITION BY RANGE (received_at)');
    await db.query('CREATE TABLE simple_messages_default PARTITION OF simple_messages DEFAULT');
    for (const day of [0, 1]) {
      const from = new Date(Math.floor(Date.now() / 86_400_000 + day) * 86_400_000);
      const to = new Date(from.getTime() + 86_400_000);
      await db.query(`CREATE TABLE simple_messages_d${day} PARTITION OF simple_messages FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`);
    }
    await ensureMessagesStream(jsm, simpleNames, DEFAULT_STREAM_OPTIONS);
    stops.push(() => jsm.streams.delete(simpleNames.stream));

    const ingestPort = await freePort();
    const simpleIngest = child('simple-ingest.ts', [String(ingestPort), infra.natsUrl, simpleNames.subject]);
    const simpleIngestPid = (await simpleIngest.next('ready')).pid!;
    stops.push(async () => simpleIngest.proc.kill());
    const simpleIngestUrl = `http://127.0.0.1:${ingestPort}`;
    const pidOf = (name: string) => () => s.stack.processes.filter((p) => p.name === name && p.child.exitCode === null).map((p) => p.child.pid!);

    const startSimplePersister = async () => {
      const p = child('simple-persister.ts', [infra.natsUrl, simpleNames.stream, simpleNames.subject, simpleConsumer, s.databaseUrl, 'simple_messages', String(N.batch)]);
      const pid = (await p.next('ready')).pid!;
      return {
        pid,
        stop: async () => {
          p.proc.send({ type: 'stop' });
          await once(p.proc, 'exit');
        },
      };
    };

    // ------------------------------------------------------------ ingest alone
    if (only.has('ingest')) {
      for (const connections of CONNECTIONS) {
        const simple: number[] = [];
        const falcon: number[] = [];
        let notes = '';
        for (let r = 0; r < N.rounds; r++) {
          say(`ingest alone, ${connections} connections, round ${r + 1}: simplest ingest, then Falcon`);
          const a = await cannon(simpleIngestUrl, { seconds: N.seconds, connections });
          simple.push(accepted(a) / a.duration);
          const b = await cannon(s.ingest, { seconds: N.seconds, connections });
          falcon.push(accepted(b) / b.duration);
          notes = `Falcon p50 ${b.latency.p50} ms, p99 ${b.latency.p99} ms, non-2xx ${b.non2xx}; simplest p50 ${a.latency.p50} ms, p99 ${a.latency.p99} ms`;
        }
        rows.push(ratioRow(`ingest alone, ${connections} connections`, 'req/s', falcon, simple, 'simplest ingest', 1.0, notes));
      }
    }
    // What the ingest runs left in the streams is not a backlog anyone asked for.
    await jsm.streams.purge(names.stream);
    await jsm.streams.purge(simpleNames.stream);

    // ------------------------------------------------------------ persister draining a backlog
    if (only.has('persister')) {
      const simple: number[] = [];
      const falcon: number[] = [];
      const notes: string[] = [];
      const simpleCpu = { persister: 0, postgres: 0 };
      const falconCpu = { persister: 0, postgres: 0 };
      const spanRate = async (table: string, seqBefore: number) => {
        const { rows: r } = await db.query(`SELECT count(*)::int AS n, extract(epoch FROM max(persisted_at) - min(persisted_at))::float8 AS s FROM ${table} WHERE seq > $1`, [seqBefore]);
        return { stored: r[0].n as number, rate: r[0].n / Math.max(r[0].s as number, 0.001), span: r[0].s as number };
      };
      const maxSeq = async (table: string) => Number((await db.query(`SELECT coalesce(max(seq), 0) AS m FROM ${table}`)).rows[0].m);
      for (let r = 0; r < N.rounds; r++) {
        // Both backlogs are published before either persister runs, so neither shares the machine with the publishing.
        const waitingSimple = await topUp(js, jsm, simpleNames, simpleConsumer, N.persist);
        const waitingFalcon = await topUp(js, jsm, names, names.persisterConsumer, N.persist);
        say(`persister, round ${r + 1}: simplest persister drains ${waitingSimple}, then Falcon's drains ${waitingFalcon}`);
        const simpleBefore = await maxSeq('simple_messages');
        const sp = await startSimplePersister();
        await waitFor('the simplest persister to drain', () => drained(jsm, simpleNames.stream, simpleConsumer), 600_000, 50);
        simpleCpu.persister += cpuSeconds(sp.pid);
        simpleCpu.postgres += await backendCpu(db, 'simple-persister');
        await sp.stop();
        const a = await spanRate('simple_messages', simpleBefore);
        simple.push(a.rate);
        const falconBefore = await maxSeq('messages');
        await s.stack.start('persister', 1);
        await waitFor("Falcon's persister to drain", () => drained(jsm, names.stream, names.persisterConsumer), 600_000, 50);
        falconCpu.persister += pidOf('persister')().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
        falconCpu.postgres += await backendCpu(db, 'falcon-persister');
        const b = await spanRate('messages', falconBefore);
        falcon.push(b.rate);
        await s.stack.kill('persister', 'SIGTERM');
        notes.push(`round ${r + 1}: Falcon ${b.stored} rows in ${b.span.toFixed(2)} s, simplest ${a.stored} in ${a.span.toFixed(2)} s`);
      }
      for (const [who, cpu, rates] of [['Falcon', falconCpu, falcon], ['simplest', simpleCpu, simple]] as const) {
        for (const [k, v] of Object.entries(cpu)) {
          cpuRows.push({ name: `${who} ${k}, draining a backlog`, cpuPer1k: (v / (N.persist * rates.length)) * 1000, note: `${v.toFixed(1)} CPU s for ${(N.persist * rates.length).toLocaleString('en-US')} messages, process start included` });
        }
      }
      rows.push(ratioRow(`persister draining a ${N.persist.toLocaleString('en-US')} backlog`, 'rows/s', falcon, simple, 'simplest persister', 1.5, `batches up to ${N.batch}; time from the first to the last batch's transaction; ${notes.join('; ')}`));
    }

    // ------------------------------------------------------------ the whole pipeline
    let gatewayUrl = '';
    const needPipeline = only.has('pipeline') || only.has('latency') || only.has('fanout');
    if (needPipeline) {
      say("starting Falcon's persister and gateway, and the simplest persister");
      await s.stack.start('persister', 1);
      gatewayUrl = wsUrl((await s.stack.start('realtime', 1)).url);
    }
    if (only.has('pipeline')) {
      const sp = await startSimplePersister();
      const watcher = await wsClients(gatewayUrl, 1, 1);
      const falconMeter = cpuMeter({ ingest: pidOf('ingest'), persister: pidOf('persister'), realtime: pidOf('realtime'), query: pidOf('query') });
      const simpleMeter = cpuMeter({ ingest: () => [simpleIngestPid], persister: () => [sp.pid] });
      let pgPids: number[] = [];
      const natsPids = natsServerPids();
      const pgMeter = cpuMeter({ postgres: () => pgPids, 'nats-server (whole, shared)': () => natsPids });
      const falconCpu: Record<string, number> = {};
      const simpleCpu: Record<string, number> = {};
      let falconMessages = 0;
      let simpleMessages = 0;
      const run = async (url: string, stream: string, consumer: string, connections: number, meter: ReturnType<typeof cpuMeter>, cpu: Record<string, number>) => {
        pgPids = await backendPids(db);
        meter.start();
        pgMeter.start();
        const t0 = performance.now();
        const result = await cannon(url, { seconds: N.seconds, connections });
        await waitFor('the pipeline to store everything', () => drained(jsm, stream, consumer), 120_000, 20);
        const seconds = (performance.now() - t0) / 1000;
        for (const [k, v] of Object.entries({ ...meter.stop(), ...pgMeter.stop() })) cpu[k] = (cpu[k] ?? 0) + v;
        return { rate: accepted(result) / seconds, accepted: accepted(result), seconds, result };
      };
      for (const connections of CONNECTIONS) {
        const simple: number[] = [];
        const falcon: number[] = [];
        let note = '';
        for (let r = 0; r < N.rounds; r++) {
          say(`whole pipeline, ${connections} connections, round ${r + 1}: simplest pipeline, then Falcon (one WebSocket client)`);
          const a = await run(simpleIngestUrl, simpleNames.stream, simpleConsumer, connections, simpleMeter, simpleCpu);
          simple.push(a.rate);
          simpleMessages += a.accepted;
          await watcher.reset();
          const b = await run(s.ingest, names.stream, names.persisterConsumer, connections, falconMeter, falconCpu);
          falcon.push(b.rate);
          falconMessages += b.accepted;
          await waitFor('the WebSocket client to see every message', async () => (await watcher.report()).frames >= b.accepted, 60_000, 50);
          const batches = await batchSizes(s.stack.processes.find((p) => p.name === 'persister')!.url);
          note = `POST -> row stored (time until the consumer has nothing pending or unacked); Falcon p99 ${b.result.latency.p99} ms, non-2xx ${b.result.non2xx}; Falcon's persister batches so far average ${batches.toFixed(1)} messages`;
        }
        rows.push(ratioRow(`whole pipeline, ${connections} connections`, 'msg/s', falcon, simple, 'simplest pipeline', 1.0, note));
      }
      await watcher.close();
      await sp.stop();
      const per1k = (cpu: Record<string, number>, messages: number, who: string) => {
        for (const [k, v] of Object.entries(cpu)) {
          if (v > 0) cpuRows.push({ name: `${who} ${k}`, cpuPer1k: (v / messages) * 1000, note: `${v.toFixed(1)} CPU s for ${messages.toLocaleString('en-US')} messages` });
        }
      };
      per1k(falconCpu, falconMessages, 'Falcon');
      per1k(simpleCpu, simpleMessages, 'simplest');
      // Exactly one row per accepted message, or the figures above mean nothing.
      // autocannon abandons the requests in flight when its time is up; their messages can land
      // in the stream just after the drain check, so the rows are awaited, then compared.
      let last = 0;
      let check: { n: number; d: number; i: number } = { n: 0, d: 0, i: 0 };
      const counted = async () => {
        last = (await jsm.streams.info(names.stream)).state.messages;
        check = (await db.query('SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, count(DISTINCT id)::int AS i FROM messages')).rows[0];
        return check.n === last;
      };
      await waitFor('one row per message in the stream', counted, 60_000, 250).catch(() => undefined);
      if (check.n !== last || check.d !== last || check.i !== last) throw new Error(`rows ${JSON.stringify(check)} do not match the ${last} messages in the stream`);
      say(`check: ${last} messages in the stream, ${check.n} rows, each seq and id once`);
    }

    // ------------------------------------------------------------ latency at a fixed rate
    if (only.has('latency')) {
      say(`latency: ${N.latencyRate} msg/s for ${N.latencySeconds} s, POST written -> WebSocket frame and -> row visible`);
      const watcher = await wsClients(gatewayUrl, 1, 1);
      const { hdr } = await import('./hdr.js');
      const visible = hdr();
      const poller = new pg.Client({ connectionString: s.databaseUrl });
      poller.on('error', () => undefined);
      await poller.connect();
      let lastSeq = Number((await poller.query('SELECT coalesce(max(seq), 0) AS m FROM messages')).rows[0].m);
      let polling = true;
      // Polled back to back: a row's visibility is known within one short query's time.
      const polled = (async () => {
        while (polling) {
          const { rows: r } = await poller.query<{ seq: string; t: number }>("SELECT seq, (payload->>'t')::float8 AS t FROM messages WHERE seq > $1 ORDER BY seq", [lastSeq]);
          const now = performance.timeOrigin + performance.now();
          for (const row of r) {
            if (row.t > 0) visible.record(now - row.t);
            lastSeq = Number(row.seq);
          }
          if (r.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
        }
      })();
      const run = await pacedPost(s.ingest, N.latencyRate, N.latencySeconds);
      let ws = await watcher.report();
      await waitFor('frames', async () => (ws = await watcher.report()).frames >= run.accepted, 60_000, 50);
      await waitFor('rows', () => visible.count() >= run.accepted, 60_000, 50);
      polling = false;
      await polled;
      await poller.end();
      await watcher.close();
      const note = `${run.accepted} messages at ${N.latencyRate} msg/s, not accepted ${run.failed}`;
      rows.push({ name: `latency @${N.latencyRate} msg/s: POST written -> WebSocket frame, p50`, value: round(ws.p50, 2), unit: 'ms', note });
      rows.push({ name: `latency @${N.latencyRate} msg/s: POST written -> WebSocket frame, p99`, value: round(ws.p99, 2), unit: 'ms' });
      rows.push({ name: `latency @${N.latencyRate} msg/s: POST written -> row visible, p50`, value: round(visible.p(50), 2), unit: 'ms', note: 'visibility polled back to back with an indexed query' });
      rows.push({ name: `latency @${N.latencyRate} msg/s: POST written -> row visible, p99`, value: round(visible.p(99), 2), unit: 'ms' });
    }

    // ------------------------------------------------------------ fan-out
    if (only.has('fanout')) {
      say(`fan-out baseline: bare uWebSockets.js to ${N.fanoutClients} clients at 100 msg/s`);
      const uwsPort = await freePort();
      const bare = child('uws-bare.ts', [String(uwsPort)]);
      await bare.next('ready');
      const bareClients = await wsClients(`ws://127.0.0.1:${uwsPort}/ws`, N.fanoutClients);
      bare.proc.send({ type: 'publish', rate: 100, count: 100 * N.fanoutSeconds });
      await bare.next('done');
      const bareCount = 100 * N.fanoutSeconds * Math.min(N.fanoutClients, 20);
      let bareReport = await bareClients.report();
      await waitFor('bare deliveries', async () => (bareReport = await bareClients.report()).frames >= bareCount, 30_000, 100);
      await bareClients.close();
      bare.proc.kill();
      say(`fan-out: ${N.fanoutClients} clients on one gateway at 100 msg/s`);
      const fan = await wsClients(gatewayUrl, N.fanoutClients);
      const fanRun = await pacedPost(s.ingest, 100, N.fanoutSeconds);
      const fanExpected = fanRun.accepted * Math.min(N.fanoutClients, 20);
      let fanReport = await fan.report();
      await waitFor('fan-out deliveries', async () => (fanReport = await fan.report()).frames >= fanExpected, 60_000, 100);
      await fan.close();
      rows.push({ name: `fan-out: ${N.fanoutClients} clients @100 msg/s, p50`, value: round(fanReport.p50, 2), unit: 'ms', baseline: `bare uWS: ${round(bareReport.p50, 2)} ms`, note: 'POST written -> client, through ingest, NATS and the gateway; the baseline only has the last hop' });
      rows.push({ name: `fan-out: ${N.fanoutClients} clients @100 msg/s, p99`, value: round(fanReport.p99, 2), unit: 'ms', baseline: `bare uWS: ${round(bareReport.p99, 2)} ms`, ratio: fanReport.p99 / bareReport.p99, target: '<= 1.5x', met: fanReport.p99 <= 1.5 * bareReport.p99 });
    }

    // ------------------------------------------------------------ query
    if (only.has('query')) {
      const have = Number((await db.query('SELECT count(*) AS n FROM messages')).rows[0].n);
      if (have < N.queryRows) {
        say(`query: adding ${N.queryRows - have} rows with COPY`);
        const copyClient = await db.connect();
        const base = Number((await db.query('SELECT coalesce(max(seq), 0) AS m FROM messages')).rows[0].m);
        const payload = payloadText();
        await pipeline(
          (function* () {
            const chunk: string[] = [];
            for (let i = 1; i <= N.queryRows - have; i++) {
              chunk.push(`${base + i}\t${newMessageId()}\t2026-11-27T10:15:30.123Z\t${payload}\n`);
              if (chunk.length === 1000) yield chunk.splice(0).join('');
            }
            if (chunk.length) yield chunk.join('');
          })(),
          copyClient.query(copyStreams.from('COPY messages (seq, id, received_at, payload) FROM STDIN')),
        );
        copyClient.release();
      }
      const total = Number((await db.query('SELECT count(*) AS n FROM messages')).rows[0].n);
      say(`query baseline: COPY (SELECT row_to_json(...)) TO STDOUT of ${total} rows`);
      const copyClient = await db.connect();
      const readStart = performance.now();
      let bytes = 0;
      await pipeline(
        copyClient.query(copyStreams.to('COPY (SELECT row_to_json(m) FROM messages m ORDER BY seq) TO STDOUT')),
        new Writable({
          write(chunk: Buffer, _e, cb) {
            bytes += chunk.length;
            cb();
          },
        }),
      );
      const copyReadRate = total / ((performance.now() - readStart) / 1000);
      copyClient.release();
      say(`query: streaming the whole table (${total} rows) through GET /api/messages`);
      /** Streams one export to the end; rows/s and MiB. */
      const exportRate = async (query: string, rowCount: number, accept = 'application/json') => {
        const q0 = performance.now();
        const res = await fetch(`${s.query}/api/messages${query}`, { headers: { accept } });
        let received = 0;
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) received += chunk.length;
        return { rate: rowCount / ((performance.now() - q0) / 1000), mib: received / 2 ** 20 };
      };
      const full = await exportRate('', total);
      const queryRate = full.rate;
      rows.push({ name: 'query: full table stream', value: round(queryRate), unit: 'rows/s', baseline: `COPY TO STDOUT: ${round(copyReadRate).toLocaleString('en-US')} rows/s`, ratio: queryRate / copyReadRate, target: '>= 0.5', met: queryRate / copyReadRate >= 0.5, note: `${total} rows, ${full.mib.toFixed(1)} MiB (baseline ${(bytes / 2 ** 20).toFixed(1)} MiB)` });
      say('query: the same table as NDJSON, and its newer half as a ?from= time range');
      const ndjson = await exportRate('', total, 'application/x-ndjson');
      rows.push({ name: 'query: full table stream, NDJSON', value: round(ndjson.rate), unit: 'rows/s', baseline: 'JSON array, same run', ratio: ndjson.rate / queryRate, target: '>= 0.9', met: ndjson.rate / queryRate >= 0.9, note: `${total} rows, ${ndjson.mib.toFixed(1)} MiB` });
      const middle = (await db.query('SELECT received_at FROM messages ORDER BY received_at OFFSET $1 LIMIT 1', [Math.floor(total / 2)])).rows[0]?.received_at as Date | undefined;
      const inRange = Number((await db.query('SELECT count(*) AS n FROM messages WHERE received_at >= $1', [middle ?? new Date(0)])).rows[0].n);
      const ranged = await exportRate(`?from=${encodeURIComponent((middle ?? new Date(0)).toISOString())}`, inRange);
      rows.push({ name: 'query: time range (newer half), stream', value: round(ranged.rate), unit: 'rows/s', baseline: 'JSON array, same run', ratio: ranged.rate / queryRate, note: `${inRange} of ${total} rows` });
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await jsm.consumers.delete(simpleNames.stream, simpleConsumer).catch(() => undefined);
    await nc.close();
    await stack?.stop();
    await infra.stop();
  }
  if (PROFILE) {
    say(`profiles in ${profileDir}`);
    process.stdout.write(summarizeProfiles(profileDir, readdirSync(profileDir)));
  }
}

const measuredVersions: Record<string, string> = { node: process.version };

/** Versions of the packages on the measured paths, read from their installed package.json. */
function packageVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['koa', 'raw-body', '@nats-io/jetstream', '@nats-io/transport-node', 'pg', 'pg-copy-streams', 'uWebSockets.js', 'autocannon']) {
    try {
      const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { name: string; version: string };
      out[name] = name === pkg.name ? pkg.version : `${pkg.name}@${pkg.version}`;
    } catch {
      out[name] = 'not installed';
    }
  }
  return out;
}

function versions(): Record<string, string> {
  return { ...measuredVersions, ...packageVersions() };
}

function write(): void {
  mkdirSync(OUT, { recursive: true });
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: round(totalmem() / 2 ** 30, 1), loadAverage: loadavg().map((x) => round(x, 2)), date: new Date().toISOString(), smoke: SMOKE };
  writeFileSync(join(OUT, 'latest.json'), `${JSON.stringify({ machine, versions: versions(), load, results: rows, cpu: cpuRows }, null, 2)}\n`);
  const table = [
    `# Falcon benchmark${SMOKE ? ' (smoke run, tiny counts: not comparable)' : ''}`,
    '',
    `${machine.date}: ${machine.cpus} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, load average at the end ${machine.loadAverage.join(' ')}; everything (load, services, NATS, Postgres) on this one machine.`,
    '',
    `Load: ${load.tool}; ${CONNECTIONS.join(' and ')} connections, ${N.seconds} s per run, ${N.rounds} round(s), ${load.order}. Backlog ${N.persist.toLocaleString('en-US')} messages, batches up to ${N.batch}. Latency at ${N.latencyRate} msg/s, ${N.latencySeconds} s.`,
    '',
    `Versions: ${Object.entries(versions()).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    '| measurement | Falcon | baseline (same run) | ratio | target | met | notes |',
    '|---|---:|---|---:|---|:-:|---|',
    ...rows.map((r) => `| ${r.name} | ${r.value.toLocaleString('en-US')} ${r.unit} | ${r.baseline ?? ''} | ${r.ratio === undefined ? '' : r.ratio.toFixed(2)} | ${r.target ?? ''} | ${r.met === undefined ? '' : r.met ? 'yes' : 'no'} | ${r.note ?? ''} |`),
    '',
    ...(cpuRows.length
      ? [
          'CPU per 1,000 messages (process user + system time during the pipeline runs, from /proc; Postgres counts only the backends of the bench database):',
          '',
          '| process | CPU seconds per 1,000 msg | notes |',
          '|---|---:|---|',
          ...cpuRows.map((c) => `| ${c.name} | ${c.cpuPer1k.toFixed(3)} | ${c.note} |`),
          '',
        ]
      : []),
  ].join('\n');
  writeFileSync(join(OUT, 'latest.md'), table);
  process.stdout.write(`\n${table}\nwritten to ${OUT}\n`);
}

await main();
write();
