import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { connect, nkeys } from '@nats-io/transport-node';
import { ConfigError, connectNats, createSilentLogger, natsConnectionOptions, natsTransportSettings, type NatsAuthConfig } from '../../src/index.js';
import { freePort, isPortOpen, waitFor } from '../../../../scripts/stack.js';

const NATS_SERVER = process.env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server';

interface Server {
  url: string;
  stop(): Promise<void>;
}

/** A real nats-server on a free port, with `settings` as the rest of its configuration. */
async function startServer(dir: string, settings: string): Promise<Server> {
  const port = await freePort();
  const config = join(dir, `nats-${port}.conf`);
  writeFileSync(config, `listen: "127.0.0.1:${port}"\n${settings}\n`);
  const child: ChildProcess = spawn(NATS_SERVER, ['-c', config], { stdio: 'ignore' });
  await waitFor(`nats-server on ${port}`, () => isPortOpen('127.0.0.1', port), 15_000);
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

async function canConnect(url: string, env: NatsAuthConfig): Promise<boolean> {
  try {
    const nc = await connect({ servers: url, reconnect: false, timeout: 3_000, ...natsConnectionOptions(natsTransportSettings(env)) });
    await nc.flush();
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

describe('NATS credentials from the environment (real nats-server)', function () {
  this.timeout(60_000);
  let dir: string;
  const servers: Server[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'falcon-nats-auth-'));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs in with NATS_USER/NATS_PASSWORD and is refused without them or with a wrong one', async () => {
    const server = await startServer(dir, 'authorization { user: falcon, password: "s3cret-pass" }');
    servers.push(server);
    expect(await canConnect(server.url, { NATS_USER: 'falcon', NATS_PASSWORD: 's3cret-pass' })).to.equal(true);
    expect(await canConnect(server.url, {})).to.equal(false);
    expect(await canConnect(server.url, { NATS_USER: 'falcon', NATS_PASSWORD: 'wrong' })).to.equal(false);
    // connectNats, the way every service connects, with the same settings.
    const link = await connectNats({ url: server.url, name: 'test', log: createSilentLogger(), transport: natsTransportSettings({ NATS_USER: 'falcon', NATS_PASSWORD: 's3cret-pass' }) });
    expect(link.isConnected()).to.equal(true);
    await link.nc.close();
  });

  it('logs in with NATS_TOKEN and is refused with a wrong one', async () => {
    const server = await startServer(dir, 'authorization { token: "t0ken-for-falcon" }');
    servers.push(server);
    expect(await canConnect(server.url, { NATS_TOKEN: 't0ken-for-falcon' })).to.equal(true);
    expect(await canConnect(server.url, { NATS_TOKEN: 'nope' })).to.equal(false);
    expect(await canConnect(server.url, {})).to.equal(false);
  });

  it('logs in with the NKey seed in NATS_NKEY_SEED_FILE and is refused with another key', async () => {
    const user = nkeys.createUser();
    const server = await startServer(dir, `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`);
    servers.push(server);
    const seedFile = join(dir, 'user.nk');
    writeFileSync(seedFile, `${new TextDecoder().decode(user.getSeed())}\n`);
    expect(await canConnect(server.url, { NATS_NKEY_SEED_FILE: seedFile })).to.equal(true);
    const strangerFile = join(dir, 'stranger.nk');
    writeFileSync(strangerFile, new TextDecoder().decode(nkeys.createUser().getSeed()));
    expect(await canConnect(server.url, { NATS_NKEY_SEED_FILE: strangerFile })).to.equal(false);
  });

  it('speaks TLS with NATS_TLS_CA_FILE and presents the client certificate the server requires', async () => {
    const file = (name: string) => join(dir, name);
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    // A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=falcon-test-ca', '-keyout', file('ca.key'), '-out', file('ca.crt'));
    // nats.js names 127.0.0.1 "localhost" for the TLS handshake.
    writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    for (const name of ['server', 'client']) {
      openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`));
      openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file(`${name}.crt`));
    }
    const server = await startServer(dir, `tls { cert_file: "${file('server.crt')}", key_file: "${file('server.key')}", ca_file: "${file('ca.crt')}", verify: true }`);
    servers.push(server);
    const tls = { NATS_TLS_CA_FILE: file('ca.crt'), NATS_TLS_CERT_FILE: file('client.crt'), NATS_TLS_KEY_FILE: file('client.key') };
    expect(await canConnect(server.url, tls)).to.equal(true);
    // Without the client certificate the server refuses; without the CA we refuse the server.
    expect(await canConnect(server.url, { NATS_TLS_CA_FILE: tls.NATS_TLS_CA_FILE })).to.equal(false);
    expect(await canConnect(server.url, { NATS_TLS_CERT_FILE: tls.NATS_TLS_CERT_FILE, NATS_TLS_KEY_FILE: tls.NATS_TLS_KEY_FILE })).to.equal(false);
  });

  it('reports every contradiction in the settings at once', () => {
    try {
      natsTransportSettings({ NATS_USER: 'u', NATS_TOKEN: 't', NATS_TLS_CERT_FILE: '/c.pem' });
      expect.fail('expected a ConfigError');
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      expect((err as ConfigError).problems).to.have.length(3);
    }
  });

  it('passes the TLS files through as transport-node options', () => {
    const options = natsConnectionOptions(natsTransportSettings({ NATS_TLS_CA_FILE: '/ca.crt', NATS_TLS_CERT_FILE: '/tls.crt', NATS_TLS_KEY_FILE: '/tls.key' }));
    expect(options.tls).to.deep.equal({ caFile: '/ca.crt', certFile: '/tls.crt', keyFile: '/tls.key' });
    expect(natsConnectionOptions(natsTransportSettings({}))).to.deep.equal({});
  });
});
