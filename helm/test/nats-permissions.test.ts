import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { expect } from 'chai';
import { parse } from 'yaml';
import { DEFAULT_CONSUMER_OPTIONS, DEFAULT_STREAM_OPTIONS, ensureMessagesStream, ensurePersisterConsumer, falconNames } from '@falcon/shared';
import { freePort, isPortOpen, ROOT, waitFor } from '../../scripts/stack.js';

/**
 * deploy/nats-values.yaml's authorization, loaded into a real nats-server the way the NATS
 * chart writes it: config.merge as JSON, with "<< $VAR >>" strings unquoted so the server reads
 * the passwords from its environment (nats-io/k8s helm/charts/nats/templates/_helpers.tpl).
 */
function natsConfig(port: number, storeDir: string): string {
  const values = parse(readFileSync(join(ROOT, 'deploy', 'nats-values.yaml'), 'utf8'));
  const config = { ...values.config.merge, port, jetstream: { store_dir: storeDir } };
  return JSON.stringify(config, null, 2).replace(/"<<\s+(.*?)\s+>>"/g, '$1');
}

/** Debian's nats-server (what .ci/run installs) lives in /usr/sbin, not always on PATH. */
const NATS_SERVER = process.env['NATS_SERVER_BIN'] ?? (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server');
const PASSWORDS = { FALCON_INGEST_PASSWORD: 'pw-ingest', FALCON_PERSISTER_PASSWORD: 'pw-persister', FALCON_REALTIME_PASSWORD: 'pw-realtime' };

describe('deploy/nats-values.yaml permissions, on a real nats-server', function () {
  this.timeout(60_000);
  const names = falconNames('falcon');
  let server: ChildProcess;
  let dir: string;
  let url: string;
  const connections: NatsConnection[] = [];
  const login = async (user: string, pass: string) => {
    const nc = await connect({ servers: url, user, pass });
    connections.push(nc);
    return nc;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'falcon-nats-perms-'));
    const port = await freePort();
    url = `nats://127.0.0.1:${port}`;
    writeFileSync(join(dir, 'nats.conf'), natsConfig(port, join(dir, 'js')));
    server = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-c', join(dir, 'nats.conf')], { env: { ...process.env, ...PASSWORDS }, stdio: 'ignore' });
    let failed: Error | undefined;
    server.once('error', (err) => (failed = err));
    await waitFor('nats-server', async () => failed !== undefined || (await isPortOpen('127.0.0.1', port)), 20_000);
    if (failed) throw new Error(`cannot start ${NATS_SERVER}: ${(failed as Error).message}`);
  });

  after(async () => {
    for (const nc of connections) await nc.close().catch(() => {});
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets ingest create the stream and publish to the message subject', async () => {
    const nc = await login('falcon-ingest', PASSWORDS.FALCON_INGEST_PASSWORD);
    await ensureMessagesStream(await jetstreamManager(nc), names, DEFAULT_STREAM_OPTIONS);
    const ack = await jetstream(nc).publish(names.subject, JSON.stringify({ from: 'ingest' }));
    expect(ack.stream).to.equal(names.stream);
  });

  for (const user of ['falcon-persister', 'falcon-realtime'] as const) {
    it(`refuses a publish to the message subject from ${user}`, async () => {
      const password = user === 'falcon-persister' ? PASSWORDS.FALCON_PERSISTER_PASSWORD : PASSWORDS.FALCON_REALTIME_PASSWORD;
      const nc = await login(user, password);
      const refused = await jetstream(nc)
        .publish(names.subject, JSON.stringify({ from: user }), { timeout: 2000 })
        .then(
          () => undefined,
          (err: Error) => err,
        );
      expect(String(refused)).to.match(/permission/i);
    });
  }

  it('lets the persister read and ack through its durable consumer, and realtime through an ordered one', async () => {
    const ingest = await login('falcon-ingest', PASSWORDS.FALCON_INGEST_PASSWORD);
    await ensureMessagesStream(await jetstreamManager(ingest), names, DEFAULT_STREAM_OPTIONS);
    const { seq } = await jetstream(ingest).publish(names.subject, JSON.stringify({ from: 'ingest', n: 2 }));

    const persister = await login('falcon-persister', PASSWORDS.FALCON_PERSISTER_PASSWORD);
    await ensurePersisterConsumer(await jetstreamManager(persister), names, DEFAULT_CONSUMER_OPTIONS);
    const durable = await jetstream(persister).consumers.get(names.stream, names.persisterConsumer);
    const seen: number[] = [];
    while (!seen.includes(seq)) {
      const m = await durable.next({ expires: 5000 });
      if (!m) throw new Error('the persister got nothing');
      seen.push(m.seq);
      await m.ackAck();
    }

    const realtime = await login('falcon-realtime', PASSWORDS.FALCON_REALTIME_PASSWORD);
    const ordered = await jetstream(realtime).consumers.get(names.stream, { opt_start_seq: seq });
    const m = await ordered.next({ expires: 5000 });
    expect(m?.seq).to.equal(seq);
  });
});
