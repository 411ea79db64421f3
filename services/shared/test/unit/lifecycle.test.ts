import { EventEmitter } from 'node:events';
import { request } from 'node:http';
import Koa from 'koa';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import {
  AbortedError,
  backoffDelay,
  closeHttpServer,
  createHttpServer,
  createLifecycle,
  koaErrorLevel,
  listen,
  logKoaErrors,
  retry,
  sleep,
  type Lifecycle,
} from '../../src/index.js';

/** A pino logger whose lines land in an array. */
function capturedLogger() {
  const lines: { level: number; msg: string; reason?: string; [key: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()));
      callback();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

const FATAL = 60;

describe('createLifecycle', () => {
  let proc: EventEmitter;
  let exits: number[];
  let life: Lifecycle | undefined;

  beforeEach(() => {
    proc = new EventEmitter();
    exits = [];
  });

  afterEach(async () => {
    // Every test ends its life cycle, so no deadline timer outlives it.
    if (life && !life.isStopping()) await life.stop('test over');
    life = undefined;
  });

  function start(timeoutMs = 5_000, onDraining?: () => void) {
    const { log, lines } = capturedLogger();
    life = createLifecycle({ log, timeoutMs, exit: (code) => exits.push(code), process: proc, onDraining });
    return { life, lines };
  }

  it('on SIGTERM marks not ready, aborts its signal, runs the stops in reverse order of start and exits 0', async () => {
    const order: string[] = [];
    const { life } = start(5_000, () => order.push('not ready'));
    life.onStop('nats', () => order.push('nats'));
    life.onStop('http', async () => {
      expect(life.signal.aborted).to.equal(true);
      order.push('http');
    });
    proc.emit('SIGTERM', 'SIGTERM');
    expect(await life.exited).to.equal(0);
    expect(order).to.deep.equal(['not ready', 'http', 'nats']);
    expect(exits).to.deep.equal([0]);
  });

  it('treats a watched component that ends as a failure: fatal once, graceful stop, exit 1', async () => {
    const { life, lines } = start();
    let stopped = false;
    life.onStop('consumer', () => {
      stopped = true;
    });
    life.watch('consumer', Promise.resolve());
    expect(await life.exited).to.equal(1);
    expect(stopped).to.equal(true);
    expect(lines.filter((l) => l.level === FATAL).map((l) => l.reason)).to.deep.equal(['consumer ended']);
  });

  it('logs an unhandled rejection and an uncaught exception as fatal and exits 1 after the stop', async () => {
    const { life, lines } = start();
    life.onStop('pool', () => sleep(10));
    proc.emit('unhandledRejection', new Error('nobody caught me'));
    proc.emit('uncaughtException', new Error('and me'));
    expect(await life.exited).to.equal(1);
    expect(lines.filter((l) => l.level === FATAL)).to.have.length(1);
    expect(lines.map((l) => l.msg)).to.include('another failure while stopping');
    expect(exits).to.deep.equal([1]);
  });

  it('exits 1 when a stop step fails, after running the others', async () => {
    const { life } = start();
    let ran = false;
    life.onStop('pool', () => {
      ran = true;
    });
    life.onStop('broken', () => {
      throw new Error('boom');
    });
    expect(await life.stop('SIGTERM')).to.equal(1);
    expect(ran).to.equal(true);
  });

  it('exits 1 at the hard deadline when a stop hangs', async () => {
    const { life, lines } = start(50);
    life.onStop('stuck', () => new Promise(() => undefined));
    void life.stop('SIGTERM');
    expect(await life.exited).to.equal(1);
    expect(lines.some((l) => l.msg === 'shutdown deadline passed, exiting')).to.equal(true);
  });

  it('fails a component that rejects, and only warns when it rejects during the stop', async () => {
    const { life, lines } = start();
    let reject!: (err: Error) => void;
    life.watch('feed', new Promise((_resolve, r) => (reject = r)));
    const exited = life.stop('SIGTERM');
    reject(new Error('closed under me'));
    expect(await exited).to.equal(0);
    expect(lines.filter((l) => l.level === FATAL)).to.have.length(0);
  });

  it('stops its listeners on the process once done', async () => {
    const { life } = start();
    expect(proc.listenerCount('SIGTERM')).to.equal(1);
    await life.stop('SIGTERM');
    for (const event of ['SIGTERM', 'SIGINT', 'unhandledRejection', 'uncaughtException']) expect(proc.listenerCount(event), event).to.equal(0);
  });
});

describe('retry and sleep', () => {
  it('backs off exponentially up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, { initialMs: 250, maxMs: 5_000 }))).to.deep.equal([250, 500, 1000, 2000, 4000, 5000]);
  });

  it('retries until success, reporting each failure', async () => {
    const failures: number[] = [];
    const value = await retry(
      async (n) => {
        if (n < 3) throw new Error(`attempt ${n}`);
        return n;
      },
      { initialMs: 1, maxMs: 2, onFailure: (_err, attempt) => failures.push(attempt) },
    );
    expect(value).to.equal(3);
    expect(failures).to.deep.equal([1, 2]);
  });

  it('ends a wait at once when its signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const waiting = retry(() => Promise.reject(new Error('down')), { initialMs: 60_000, maxMs: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 10);
    const err = await waiting.catch((e: unknown) => e);
    expect(err).to.be.instanceOf(AbortedError);
    expect(Date.now() - started).to.be.lessThan(1_000);
    expect(await sleep(10, controller.signal).catch((e: unknown) => e)).to.be.instanceOf(AbortedError);
  });

  it('gives up at once on an error that is not retryable', async () => {
    let attempts = 0;
    const err = await retry(
      () => {
        attempts += 1;
        return Promise.reject(new Error('config'));
      },
      { initialMs: 1, maxMs: 1, retryable: () => false },
    ).catch((e: unknown) => e as Error);
    expect((err as Error).message).to.equal('config');
    expect(attempts).to.equal(1);
  });
});

describe('koaErrorLevel', () => {
  it('logs a client that hung up at debug, a client error at info and anything else at error', () => {
    expect(koaErrorLevel(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }))).to.equal('debug');
    expect(koaErrorLevel(Object.assign(new Error('premature'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }))).to.equal('debug');
    expect(koaErrorLevel(new Error('x'), true)).to.equal('debug');
    expect(koaErrorLevel(Object.assign(new Error('bad'), { status: 400 }))).to.equal('info');
    expect(koaErrorLevel(new Error('bug'))).to.equal('error');
  });
});

describe('logKoaErrors', () => {
  it("replaces koa's console.error with one leveled pino line", () => {
    const { log, lines } = capturedLogger();
    const app = new Koa();
    logKoaErrors(app, log);
    app.callback();
    // koa adds its console.error handler only when no 'error' listener exists.
    expect(app.listenerCount('error')).to.equal(1);
    app.emit('error', Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({ level: 20, msg: 'request error' });
  });
});

describe('closeHttpServer', () => {
  it('cuts a request still open after the grace period, so a stop does not wait for the deadline', async () => {
    const server = createHttpServer((_req, res) => {
      res.writeHead(200);
      res.write('never ends');
    }, 0);
    const port = await listen(server, 0, '127.0.0.1');
    const answered = new Promise<void>((resolve) => {
      const req = request({ port, host: '127.0.0.1', path: '/' }, (res) => {
        res.once('data', () => resolve());
        res.on('error', () => undefined);
      });
      req.on('error', () => undefined);
      req.end();
    });
    await answered;
    const started = Date.now();
    await closeHttpServer(server, 100);
    expect(Date.now() - started).to.be.within(90, 2_000);
  });
});
