import { Writable } from 'node:stream';
import { expect } from 'chai';
import {
  ConfigError,
  createLogger,
  createMetricsRegistry,
  createProbes,
  isDatabaseUnavailable,
  isTransientDbError,
  isUuid,
  maskUrl,
  natsServers,
  newMessageId,
  parseEnv,
  problem,
} from '../../src/index.js';

describe('parseEnv', () => {
  const schema = {
    type: 'object' as const,
    properties: {
      PORT: { type: 'integer', minimum: 1, maximum: 65535, default: 8081 },
      MODE: { type: 'string', enum: ['a', 'b'], default: 'a' },
      LIMIT: { type: 'integer', minimum: 1 },
    },
  };

  it('applies defaults and coerces types', () => {
    expect(parseEnv(schema, {})).to.deep.equal({ PORT: 8081, MODE: 'a' });
    expect(parseEnv(schema, { PORT: '9000', LIMIT: '5', OTHER: 'x' })).to.deep.equal({ PORT: 9000, MODE: 'a', LIMIT: 5 });
  });

  it('treats an empty variable as unset', () => {
    expect(parseEnv(schema, { PORT: '' })).to.deep.equal({ PORT: 8081, MODE: 'a' });
  });

  it('reports every invalid variable at once', () => {
    try {
      parseEnv(schema, { PORT: 'eighty', MODE: 'c', LIMIT: '0' });
      expect.fail('should have thrown');
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      expect(problems).to.match(/PORT/).and.match(/MODE/).and.match(/LIMIT/);
    }
  });
});

describe('problem', () => {
  it('is RFC 9457 shaped with a stable type and the errors list when given', () => {
    expect(problem(400, 'validation', 'bad', [{ path: '/a', message: 'must be string' }])).to.deep.equal({
      type: 'https://falcon.dev/problems/validation',
      title: 'Bad Request',
      status: 400,
      detail: 'bad',
      errors: [{ path: '/a', message: 'must be string' }],
    });
    expect(problem(413, 'body-too-large', 'big')).to.not.have.property('errors');
  });
});

describe('isDatabaseUnavailable', () => {
  it('tells the database being out of reach from one statement failing', () => {
    for (const code of ['08006', '08001', '53300', '57P01', '57P03', '58030', 'ECONNREFUSED', undefined]) {
      expect(isDatabaseUnavailable(Object.assign(new Error('x'), { code })), String(code)).to.equal(true);
    }
    for (const code of ['40001', '40P01', '57014', '22P02', '23505']) {
      expect(isDatabaseUnavailable(Object.assign(new Error('x'), { code })), code).to.equal(false);
    }
  });
});

describe('isTransientDbError', () => {
  it('retries connection, resource and operator errors and network failures', () => {
    for (const code of ['08006', '53300', '57P01', '40001', 'ECONNREFUSED', undefined]) {
      expect(isTransientDbError(Object.assign(new Error('x'), { code })), String(code)).to.equal(true);
    }
  });

  it('does not retry errors caused by the data', () => {
    for (const code of ['22P02', '23505', '22021', '54000']) {
      expect(isTransientDbError(Object.assign(new Error('x'), { code })), code).to.equal(false);
    }
  });
});

describe('ids and servers', () => {
  it('makes UUIDv7 ids that sort by creation time', () => {
    const ids = Array.from({ length: 50 }, () => newMessageId());
    expect(ids.every(isUuid)).to.equal(true);
    expect(ids.every((id) => id[14] === '7')).to.equal(true);
    expect([...ids].sort()).to.deep.equal(ids);
  });

  it('accepts a comma-separated NATS_URL', () => {
    expect(natsServers('nats://a:4222, nats://b:4222,')).to.deep.equal(['nats://a:4222', 'nats://b:4222']);
  });
});

describe('probes', () => {
  it('answers /readyz 503 while starting, 200 once started and healthy, 503 while draining', async () => {
    let healthy = true;
    const probes = createProbes(createMetricsRegistry('test', '0'), { dep: () => healthy, broken: () => Promise.resolve(true) });
    expect((await probes.handle('/readyz'))?.status).to.equal(503);
    probes.markStarted();
    expect((await probes.handle('/readyz'))?.status).to.equal(200);
    healthy = false;
    const down = await probes.handle('/readyz');
    expect(down?.status).to.equal(503);
    expect(JSON.parse(down!.body).checks).to.deep.equal({ dep: false, broken: true });
    healthy = true;
    probes.markDraining();
    expect((await probes.handle('/readyz'))?.status).to.equal(503);
    expect((await probes.handle('/healthz'))?.status).to.equal(200);
  });

  it('counts a throwing check as not ready and serves Prometheus metrics', async () => {
    const probes = createProbes(createMetricsRegistry('test', '0'), {
      boom: () => {
        throw new Error('x');
      },
    });
    probes.markStarted();
    expect((await probes.handle('/readyz'))?.status).to.equal(503);
    const metrics = await probes.handle('/metrics');
    expect(metrics?.contentType).to.match(/^text\/plain/);
    expect(metrics?.body).to.match(/process_cpu_user_seconds_total\{service="test"/);
    expect(await probes.handle('/other')).to.equal(undefined);
  });
});

describe('secrets in logs', () => {
  it('redacts authorization headers, passwords and tokens wherever they appear', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger({ service: 't', version: '0', level: 'info', destination });
    log.info({ req: { headers: { authorization: 'Bearer eyJ.secret.sig', cookie: 'c=1' } }, password: 'pw-1', nats: { token: 'tok-2', pass: 'pw-3' }, authorization: 'Bearer x' }, 'request');
    const text = lines.join('');
    for (const secret of ['eyJ.secret.sig', 'c=1', 'pw-1', 'tok-2', 'pw-3', 'Bearer x']) expect(text).to.not.contain(secret);
    expect(text).to.contain('[redacted]');
  });

  it('masks the password in connection URLs and keeps where they point', () => {
    expect(maskUrl('postgres://falcon:s3cret@db.example:5432/falcon?sslmode=verify-full')).to.equal('postgres://falcon:***@db.example:5432/falcon?sslmode=verify-full');
    expect(maskUrl('nats://u:p4ss@n1:4222, nats://n2:4222')).to.equal('nats://u:***@n1:4222,nats://n2:4222');
    expect(maskUrl('postgres://h/db?password=x')).to.equal('postgres://h/db?password=***');
    expect(maskUrl('not a url with s3cret')).to.equal('[unparsable url]');
  });
});
