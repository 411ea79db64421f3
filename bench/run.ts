/**
 * `npm run bench`: Falcon against the limits of its own parts, measured on this machine in
 * one run, written to bench/results/latest.{md,json}. `--smoke` runs the same code paths with
 * tiny counts in a few seconds (part of npm test, so the benchmark cannot rot).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, nuid } from '@nats-io/transport-node';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { DEFAULT_STREAM_OPTIONS, encodeEnvelope, ensureMessagesStream, falconNames, newMessageId } from '@falcon/shared';
import { startLocalStack, wsUrl, type LocalStack } from '../e2e/target.js';
import { ensureInfra, freePort, ROOT, waitFor } from '../scripts/stack.js';

const { values: args } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, out: { type: 'string' } } });
const SMOKE = args.smoke;
const N = SMOKE
  ? { seconds: 1, jsMessages: 2_000, rows: 2_000, persist: 2_000, e2eClients: 5, fanoutClients: 20, fanoutSeconds: 1, pipelineRate: 500 }
  : { seconds: 10, jsMessages: 100_000, rows: 100_000, persist: 100_000, e2eClients: 100, fanoutClients: 1000, fanoutSeconds: 10, pipelineRate: 6000 };
const OUT = args.out ?? (SMOKE ? join(tmpdir(), 'falcon-bench-smoke') : join(ROOT, 'bench', 'results'));

interface Row {
  name: string;
  value: number;
  unit: string;
  baseline?: string;
  ratio?: number;
  target?: string;
  met?: boolean;
  note?: string;
}
const rows: Row[] = [];
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
    close: async () => {
      c.proc.send({ type: 'close' });
      await once(c.proc, 'exit');
    },
  };
}

function cannon(url: string, opts: { seconds: number; connections: number; rate?: number }) {
  return autocannon({
    url: `${url}/api/messages`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    duration: opts.seconds,
    connections: opts.connections,
    overallRate: opts.rate,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => ({ ...req, body: payloadText() }),
      },
    ],
  });
}

const accepted = (r: autocannon.Result) => r.statusCodeStats?.['202']?.count ?? 0;

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

async function main(): Promise<void> {
  const infra = await ensureInfra(process.env, say);
  const nc = await connect({ servers: infra.natsUrl.split(',') });
  measuredVersions['nats-server'] = nc.info?.version ?? 'unknown';
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const id = nuid.next().toLowerCase().slice(-8);
  let stack: LocalStack | undefined;
  const pool = () => new pg.Pool({ connectionString: stack!.databaseUrl, max: 2 });

  try {
    // ---------------------------------------------------------------- baselines
    say('baseline: koa reading and parsing a JSON body, answering 202');
    const koaPort = await freePort();
    const koa = child('koa-baseline.ts', [String(koaPort)]);
    await koa.next('ready');
    const koaRun = await cannon(`http://127.0.0.1:${koaPort}`, { seconds: N.seconds, connections: 64 });
    koa.proc.kill();
    const koaRate = koaRun.requests.average;
    rows.push({ name: 'baseline: koa parse + 202', value: round(koaRate), unit: 'req/s' });

    say(`baseline: raw JetStream publish with ack, 1,000 in flight (${N.jsMessages} messages)`);
    const rawNames = falconNames(`bench${id}raw`);
    await ensureMessagesStream(jsm, rawNames, DEFAULT_STREAM_OPTIONS);
    const envelope = encodeEnvelope(newMessageId(), new Date().toISOString(), payloadText());
    let inFlight: Promise<unknown>[] = [];
    const jsStart = performance.now();
    for (let i = 0; i < N.jsMessages; i++) {
      inFlight.push(js.publish(rawNames.subject, envelope));
      if (inFlight.length >= 1000) {
        await inFlight[0];
        inFlight = inFlight.filter((p, k) => k > 0 || !p);
      }
    }
    await Promise.all(inFlight);
    const jsRate = N.jsMessages / ((performance.now() - jsStart) / 1000);
    await jsm.streams.delete(rawNames.stream);
    rows.push({ name: 'baseline: JetStream publish + ack (1,000 in flight)', value: round(jsRate), unit: 'msg/s' });

    // The Falcon stack, with no persister yet: ingest and gateway first.
    say('starting the Falcon stack (ingest, query, realtime)');
    stack = await startLocalStack({ replicas: { persister: 0 } });
    const db = pool();
    measuredVersions['postgres'] = String((await db.query('SHOW server_version')).rows[0].server_version);

    say(`baseline: COPY of ${N.rows} message rows into Postgres`);
    await db.query('CREATE TABLE copy_bench (LIKE messages INCLUDING DEFAULTS)');
    const copyPayload = payloadText().replace(/\\/g, '\\\\');
    const copyClient = await db.connect();
    const copyStart = performance.now();
    await pipeline(
      Readable.from(
        (function* () {
          const chunk: string[] = [];
          for (let i = 1; i <= N.rows; i++) {
            chunk.push(`${i}\t${newMessageId()}\t2026-11-27T10:15:30.123Z\t${copyPayload}\n`);
            if (chunk.length === 1000) yield chunk.splice(0).join('');
          }
          if (chunk.length) yield chunk.join('');
        })(),
      ),
      copyClient.query(copyStreams.from('COPY copy_bench (seq, id, received_at, payload) FROM STDIN')),
    );
    const copyRate = N.rows / ((performance.now() - copyStart) / 1000);
    rows.push({ name: 'baseline: COPY rows into Postgres', value: round(copyRate), unit: 'rows/s' });

    say(`baseline: COPY (SELECT row_to_json(...)) TO STDOUT of ${N.rows} rows`);
    const readStart = performance.now();
    let bytes = 0;
    await pipeline(
      copyClient.query(copyStreams.to('COPY (SELECT row_to_json(m) FROM copy_bench m ORDER BY seq) TO STDOUT')),
      new Writable({
        write(chunk: Buffer, _e, cb) {
          bytes += chunk.length;
          cb();
        },
      }),
    );
    const copyReadRate = N.rows / ((performance.now() - readStart) / 1000);
    copyClient.release();
    await db.query('DROP TABLE copy_bench');
    rows.push({ name: 'baseline: COPY ... TO STDOUT (row_to_json)', value: round(copyReadRate), unit: 'rows/s', note: `${(bytes / 2 ** 20).toFixed(1)} MiB` });

    say(`baseline: bare uWebSockets.js fan-out to ${N.fanoutClients} clients at 100 msg/s`);
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
    rows.push({ name: `baseline: bare uWS fan-out, ${N.fanoutClients} clients @100 msg/s, p50`, value: round(bareReport.p50, 2), unit: 'ms' });
    rows.push({ name: `baseline: bare uWS fan-out, ${N.fanoutClients} clients @100 msg/s, p99`, value: round(bareReport.p99, 2), unit: 'ms' });

    // ---------------------------------------------------------------- Falcon
    say('ingest: sustained POST rate at saturation (202 after the stream ack)');
    const sat = await cannon(stack.ingest, { seconds: N.seconds, connections: 64 });
    const ingestRate = accepted(sat) / sat.duration;
    rows.push({ name: 'ingest: saturation', value: round(ingestRate), unit: 'req/s', baseline: 'koa parse', ratio: ingestRate / koaRate, target: '>= 0.40', met: ingestRate / koaRate >= 0.4, note: `p50 ${sat.latency.p50} ms, p99 ${sat.latency.p99} ms, non-2xx ${sat.non2xx}` });

    say('ingest: latency at a fixed 1,000 messages/s');
    const fixed = await cannon(stack.ingest, { seconds: N.seconds, connections: 32, rate: SMOKE ? 200 : 1000 });
    rows.push({ name: 'ingest: @1,000 msg/s, p50 / p99', value: fixed.latency.p50, unit: 'ms', note: `p99 ${fixed.latency.p99} ms, ${round(accepted(fixed) / fixed.duration)} accepted/s` });

    say(`end to end: POST sent -> ${N.e2eClients} WebSocket clients, at 1,000 msg/s`);
    const e2e = await wsClients(wsUrl(stack.realtime[0]!), N.e2eClients);
    const e2eRun = await pacedPost(stack.ingest, SMOKE ? 200 : 1000, N.seconds);
    const e2eExpected = e2eRun.accepted * Math.min(N.e2eClients, 20);
    let e2eReport = await e2e.report();
    await waitFor('end-to-end deliveries', async () => (e2eReport = await e2e.report()).frames >= e2eExpected, 60_000, 100);
    await e2e.close();
    rows.push({ name: `end to end @1,000 msg/s to ${N.e2eClients} clients, p50`, value: round(e2eReport.p50, 2), unit: 'ms', target: '<= 3 ms', met: e2eReport.p50 <= 3 });
    rows.push({ name: `end to end @1,000 msg/s to ${N.e2eClients} clients, p99`, value: round(e2eReport.p99, 2), unit: 'ms', target: '<= 10 ms', met: e2eReport.p99 <= 10 });

    say(`fan-out: ${N.fanoutClients} clients on one gateway at 100 msg/s`);
    const fan = await wsClients(wsUrl(stack.realtime[0]!), N.fanoutClients);
    const fanRun = await pacedPost(stack.ingest, 100, N.fanoutSeconds);
    const fanExpected = fanRun.accepted * Math.min(N.fanoutClients, 20);
    let fanReport = await fan.report();
    await waitFor('fan-out deliveries', async () => (fanReport = await fan.report()).frames >= fanExpected, 60_000, 100);
    await fan.close();
    rows.push({ name: `fan-out: ${N.fanoutClients} clients @100 msg/s, p50`, value: round(fanReport.p50, 2), unit: 'ms', note: 'POST sent -> client, through ingest, NATS and the gateway; the baseline only has the last hop' });
    rows.push({ name: `fan-out: ${N.fanoutClients} clients @100 msg/s, p99`, value: round(fanReport.p99, 2), unit: 'ms', baseline: 'bare uWS p99', ratio: fanReport.p99 / bareReport.p99, target: '<= 1.5x', met: fanReport.p99 <= 1.5 * bareReport.p99 });

    // Persister: a backlog waits in the stream, then one (or two) replicas store it.
    const names = falconNames(stack.stack.namespace);
    const topUp = async (count: number) => {
      const info = await jsm.consumers.info(names.stream, names.persisterConsumer).catch(() => undefined);
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
    };
    const drain = async (replicas: number) => {
      const waiting = await topUp(N.persist);
      const rowsBefore = Number((await db.query('SELECT count(*) AS n FROM messages')).rows[0].n);
      const seqBefore = Number((await db.query('SELECT coalesce(max(seq), 0) AS m FROM messages')).rows[0].m);
      say(`persister: storing ${waiting} waiting messages with ${replicas} replica(s)`);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: replicas }, (_, i) => stack!.stack.start('persister', i + 1)));
      await waitFor('the persister to drain', async () => {
        const info = await jsm.consumers.info(names.stream, names.persisterConsumer);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, 600_000, 50);
      const seconds = (performance.now() - t0) / 1000;
      const stored = Number((await db.query('SELECT count(*) AS n FROM messages')).rows[0].n) - rowsBefore;
      // Writing time alone, without process start-up: first to last batch's transaction start.
      const span = Number((await db.query('SELECT extract(epoch FROM max(persisted_at) - min(persisted_at)) AS s FROM messages WHERE seq > $1', [seqBefore])).rows[0].s);
      for (let i = 1; i <= replicas; i++) await stack!.stack.kill(i === 1 ? 'persister' : `persister-${i}`, 'SIGTERM');
      return { rate: stored / Math.max(span, 0.001), stored, seconds, span };
    };
    const one = await drain(1);
    rows.push({ name: 'persister: backlog, 1 replica', value: round(one.rate), unit: 'msg/s', baseline: 'COPY in', ratio: one.rate / copyRate, target: '>= 0.50', met: one.rate / copyRate >= 0.5, note: `${one.stored} rows written in ${one.span.toFixed(2)} s (${one.seconds.toFixed(2)} s including process start)` });
    const two = await drain(2);
    rows.push({ name: 'persister: backlog, 2 replicas', value: round(two.rate), unit: 'msg/s', baseline: 'COPY in', ratio: two.rate / copyRate, note: `${two.stored} rows written in ${two.span.toFixed(2)} s (${two.seconds.toFixed(2)} s including process start)` });

    const total = Number((await db.query('SELECT count(*) AS n FROM messages')).rows[0].n);
    say(`query: streaming the whole table (${total} rows) through GET /api/messages`);
    /** Streams one export to the end; rows/s and MiB. */
    const exportRate = async (query: string, rowCount: number, accept = 'application/json') => {
      const q0 = performance.now();
      const res = await fetch(`${stack!.query}/api/messages${query}`, { headers: { accept } });
      let bytes = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length;
      return { rate: rowCount / ((performance.now() - q0) / 1000), mib: bytes / 2 ** 20 };
    };
    const full = await exportRate('', total);
    const queryRate = full.rate;
    rows.push({ name: 'query: full table stream', value: round(queryRate), unit: 'rows/s', baseline: 'COPY TO STDOUT', ratio: queryRate / copyReadRate, target: '>= 0.50', met: queryRate / copyReadRate >= 0.5, note: `${total} rows, ${full.mib.toFixed(1)} MiB` });
    say('query: the same table as NDJSON, and its newer half as a ?from= time range');
    const ndjson = await exportRate('', total, 'application/x-ndjson');
    rows.push({ name: 'query: full table stream, NDJSON', value: round(ndjson.rate), unit: 'rows/s', baseline: 'JSON array, same run', ratio: ndjson.rate / queryRate, target: '>= 0.90', met: ndjson.rate / queryRate >= 0.9, note: `${total} rows, ${ndjson.mib.toFixed(1)} MiB` });
    const middle = (await db.query('SELECT received_at FROM messages ORDER BY received_at OFFSET $1 LIMIT 1', [Math.floor(total / 2)])).rows[0]?.received_at as Date | undefined;
    const inRange = Number((await db.query('SELECT count(*) AS n FROM messages WHERE received_at >= $1', [middle ?? new Date(0)])).rows[0].n);
    const ranged = await exportRate(`?from=${encodeURIComponent((middle ?? new Date(0)).toISOString())}`, inRange);
    rows.push({ name: 'query: time range (newer half), stream', value: round(ranged.rate), unit: 'rows/s', baseline: 'JSON array, same run', ratio: ranged.rate / queryRate, note: `${inRange} of ${total} rows` });

    say(`whole pipeline: ${N.pipelineRate} msg/s into ingest, persister and a gateway with ${N.e2eClients} clients`);
    await stack.stack.start('persister', 1);
    const clients = await wsClients(wsUrl(stack.realtime[0]!), N.e2eClients);
    let maxBacklog = 0;
    const sampler = setInterval(() => {
      void jsm.consumers.info(names.stream, names.persisterConsumer).then((i) => {
        maxBacklog = Math.max(maxBacklog, i.num_pending + i.num_ack_pending);
      });
    }, 500);
    const whole = await pacedPost(stack.ingest, N.pipelineRate, N.seconds);
    clearInterval(sampler);
    const drainStart = performance.now();
    await waitFor('the backlog to clear', async () => {
      const i = await jsm.consumers.info(names.stream, names.persisterConsumer);
      return i.num_pending + i.num_ack_pending === 0;
    }, 120_000, 50);
    const drainAfter = (performance.now() - drainStart) / 1000;
    let wholeReport = await clients.report();
    await waitFor('pipeline deliveries', async () => (wholeReport = await clients.report()).frames >= whole.accepted * Math.min(N.e2eClients, 20), 60_000, 100);
    await clients.close();
    const wholeRate = whole.accepted / whole.duration;
    rows.push({
      name: 'whole pipeline (ingest + persister + gateway, 100 clients)',
      value: round(wholeRate),
      unit: 'msg/s',
      target: `>= ${N.pipelineRate}, no growing backlog`,
      met: wholeRate >= N.pipelineRate * 0.98 && drainAfter < 2,
      note: `max backlog ${maxBacklog}, cleared ${drainAfter.toFixed(2)} s after the load; delivery p50 ${round(wholeReport.p50, 1)} ms, p99 ${round(wholeReport.p99, 1)} ms; not accepted ${whole.failed}`,
    });
    await db.end();
  } finally {
    await nc.close();
    await stack?.stop();
    await infra.stop();
  }
}

const measuredVersions: Record<string, string> = { node: process.version };

/** Versions of the packages on the measured paths, read from their installed package.json. */
function packageVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['koa', '@koa/bodyparser', '@nats-io/jetstream', '@nats-io/transport-node', 'pg', 'pg-copy-streams', 'uWebSockets.js', 'autocannon']) {
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
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: round(totalmem() / 2 ** 30, 1), date: new Date().toISOString(), smoke: SMOKE };
  writeFileSync(join(OUT, 'latest.json'), `${JSON.stringify({ machine, versions: versions(), results: rows }, null, 2)}\n`);
  const table = [
    `# Falcon benchmark${SMOKE ? ' (smoke run, tiny counts: not comparable)' : ''}`,
    '',
    `${machine.date}: ${machine.cpus} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB; everything (load, services, NATS, Postgres) on this one machine.`,
    '',
    `Versions: ${Object.entries(versions()).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    '| measurement | value | baseline | ratio | target | met | notes |',
    '|---|---:|---|---:|---|:-:|---|',
    ...rows.map((r) => `| ${r.name} | ${r.value.toLocaleString('en-US')} ${r.unit} | ${r.baseline ?? ''} | ${r.ratio === undefined ? '' : r.ratio.toFixed(2)} | ${r.target ?? ''} | ${r.met === undefined ? '' : r.met ? 'yes' : 'no'} | ${r.note ?? ''} |`),
    '',
  ].join('\n');
  writeFileSync(join(OUT, 'latest.md'), table);
  process.stdout.write(`\n${table}\nwritten to ${OUT}\n`);
}

await main();
write();
