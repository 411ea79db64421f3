import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../../../../test-support/config-problems.js';
import { TEST_SECRET } from '../../../../test-support/tokens.js';

const problems = (env: Record<string, string>) => configProblems(loadConfig, env);

describe('realtime configuration', () => {
  it('leaves auth off and NATS without credentials by default, with a 15 s SSE heartbeat', () => {
    const config = loadConfig({});
    expect(config.auth).to.include({ jwtSecret: undefined, jwksUrl: undefined, clockToleranceSeconds: 5 });
    expect(config.natsTransport).to.deep.equal({});
    expect(config.sseHeartbeatSeconds).to.equal(15);
  });

  it('takes the auth and NATS transport settings the other services take', () => {
    const config = loadConfig({ AUTH_JWT_SECRET: TEST_SECRET, AUTH_AUDIENCE: 'falcon', NATS_USER: 'realtime', NATS_PASSWORD: 'pw', NATS_TLS_CA_FILE: '/etc/falcon/nats/ca.crt' });
    expect(config.auth).to.include({ jwtSecret: TEST_SECRET, audience: 'falcon' });
    expect(config.natsTransport).to.deep.equal({ user: 'realtime', password: 'pw', tls: { caFile: '/etc/falcon/nats/ca.crt' } });
  });

  it('refuses settings that would leave auth silently off or NATS half configured', () => {
    expect(problems({ AUTH_AUDIENCE: 'falcon' }).join()).to.contain('AUTH_AUDIENCE');
    expect(problems({ AUTH_JWT_SECRET: 'short' }).join()).to.contain('AUTH_JWT_SECRET');
    expect(problems({ NATS_USER: 'realtime' }).join()).to.contain('NATS_PASSWORD');
    expect(problems({ REALTIME_SSE_HEARTBEAT_SECONDS: '0' }).join()).to.contain('REALTIME_SSE_HEARTBEAT_SECONDS');
  });
});
