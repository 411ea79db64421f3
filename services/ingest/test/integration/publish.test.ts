import { JetStreamApiError, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, errors } from '@nats-io/transport-node';
import { expect } from 'chai';
import { decodeEnvelope, DEFAULT_STREAM_OPTIONS, ensureMessagesStream, falconNames } from '@falcon/shared';
import { classifyPublishError, createPublisher, type Publisher } from '../../src/publisher.js';
import { testNats, type TestNats } from '../../../../test-support/infra.js';

describe('ingest publisher against JetStream', function () {
  let nats: TestNats;
  let jsm: JetStreamManager;
  let publisher: Publisher;

  before(async () => {
    nats = await testNats();
    jsm = await jetstreamManager(nats.nc);
    await ensureMessagesStream(jsm, nats.names, DEFAULT_STREAM_OPTIONS);
    publisher = createPublisher({ nc: nats.nc, jsm, names: nats.names, timeoutMs: 5000 });
  });
  after(() => nats.cleanup());

  it('stores the envelope with the client bytes and answers the stream seq', async () => {
    const first = await publisher.publish('{"a": 1}');
    const second = await publisher.publish('{"b":"\\u00e9"}');
    expect(second.seq).to.equal(first.seq + 1);
    expect(first.duplicate).to.equal(false);
    const stored = await jsm.streams.getMessage(nats.names.stream, { seq: second.seq });
    expect(stored!.string()).to.equal(`{"id":"${second.id}","receivedAt":"${second.receivedAt}","payload":{"b":"\\u00e9"}}`);
    expect(decodeEnvelope(stored!.string()).payload).to.deep.equal({ b: 'é' });
  });

  it('answers a retry with the same Idempotency-Key with the original id, seq and receivedAt', async () => {
    const original = await publisher.publish('{"order":1}', 'order-1');
    const retry = await publisher.publish('{"order":1}', 'order-1');
    expect(retry).to.deep.equal({ ...original, duplicate: true });
    const info = await jsm.streams.info(nats.names.stream);
    expect(info.state.last_seq).to.equal(original.seq);
  });

  it('keeps different keys apart and never confuses a key with a generated id', async () => {
    const a = await publisher.publish('{}', 'k-a');
    const b = await publisher.publish('{}', 'k-b');
    const c = await publisher.publish('{}', a.id);
    expect(new Set([a.seq, b.seq, c.seq]).size).to.equal(3);
  });

  it('creates the stream once when callers with different settings race with no stream, then updates it', async () => {
    const names = falconNames(`${nats.names.namespace}-race`);
    // Start from no stream at all: the race is between creators, not between updates.
    await jsm.streams.delete(names.stream).catch(() => false);
    await jsm.streams.info(names.stream).then(
      () => expect.fail('the stream should not exist before the race'),
      () => undefined,
    );
    // One connection per caller, as separate replicas would have.
    const callers = await Promise.all([1, 2, 3, 4].map(() => connect({ servers: nats.url.split(',') })));
    try {
      const managers = await Promise.all(callers.map((nc) => jetstreamManager(nc)));
      // Two configurations at once, as when old and new replicas start together in a rolling
      // upgrade: the callers that lose the create must update rather than fail.
      const windows = [120_000, 180_000, 120_000, 180_000];
      const infos = await Promise.all(managers.map((m, i) => ensureMessagesStream(m, names, { ...DEFAULT_STREAM_OPTIONS, duplicateWindowMs: windows[i]! })));
      for (const info of infos) expect(info.config.subjects).to.deep.equal([names.subject]);
      expect(new Set(infos.map((info) => info.created)).size, 'one stream, created once').to.equal(1);
      const final = await jsm.streams.info(names.stream);
      expect([120_000 * 1e6, 180_000 * 1e6]).to.include(final.config.duplicate_window);
      const updated = await ensureMessagesStream(managers[0]!, names, { ...DEFAULT_STREAM_OPTIONS, duplicateWindowMs: 240_000 });
      expect(updated.config.duplicate_window).to.equal(240_000 * 1e6);
    } finally {
      await jsm.streams.delete(names.stream).catch(() => false);
      await Promise.all(callers.map((nc) => nc.close()));
    }
  });

  it('reports a publish with no stream on the subject as unavailable (503), from the real error', async () => {
    const nowhere = createPublisher({ nc: nats.nc, jsm, names: falconNames(`${nats.names.namespace}-none`), timeoutMs: 2000 });
    const failure = await nowhere.publish('{}').then(() => undefined, (err: unknown) => err);
    expect(failure).to.be.instanceOf(errors.RequestError);
    expect((failure as Error).cause).to.be.instanceOf(errors.NoRespondersError);
    expect(classifyPublishError(failure)).to.equal('unavailable');
  });

  it('reports a message the stream refuses (over its size limit) as internal (500), from the real error', async () => {
    const names = falconNames(`${nats.names.namespace}-small`);
    await ensureMessagesStream(jsm, names, { ...DEFAULT_STREAM_OPTIONS, maxMessageBytes: 256 });
    try {
      const small = createPublisher({ nc: nats.nc, jsm, names, timeoutMs: 5000 });
      const failure = await small.publish(JSON.stringify({ text: 'x'.repeat(1000) })).then(() => undefined, (err: unknown) => err);
      expect(failure).to.be.instanceOf(JetStreamApiError);
      expect((failure as JetStreamApiError).code).to.equal(10054);
      expect(classifyPublishError(failure)).to.equal('internal');
    } finally {
      await jsm.streams.delete(names.stream);
    }
  });

  it('answers each of many concurrent publishes with its own seq, all stored once', async () => {
    const before = (await jsm.streams.info(nats.names.stream)).state.last_seq;
    const answers = await Promise.all(Array.from({ length: 500 }, (_, i) => publisher.publish(`{"n":${i}}`)));
    const seqs = answers.map((a) => a.seq).sort((a, b) => a - b);
    expect(seqs).to.deep.equal(Array.from({ length: 500 }, (_, i) => before + 1 + i));
    for (const i of [0, 250, 499]) {
      const stored = await jsm.streams.getMessage(nats.names.stream, { seq: answers[i]!.seq });
      expect(decodeEnvelope(stored!.string()).payload).to.deep.equal({ n: i });
    }
  });

  it('fails with TimeoutError when nothing acknowledges in time, and ignores a late answer', async () => {
    // Something listens on the subject (so the server reports no "no responders") but never
    // acknowledges, as a stream would that is stuck.
    const names = falconNames(`${nats.names.namespace}mute`);
    const heard: string[] = [];
    const mute = nats.nc.subscribe(names.subject, { callback: (_err, m) => void heard.push(m.reply ?? '') });
    try {
      const started = performance.now();
      const err = await createPublisher({ nc: nats.nc, jsm, names, timeoutMs: 300 })
        .publish('{}')
        .then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(errors.TimeoutError);
      expect(classifyPublishError(err)).to.equal('unavailable');
      expect(performance.now() - started).to.be.at.least(300);
      expect(heard).to.have.length(1);
      // The ack that finally comes is dropped, not delivered to anyone.
      nats.nc.publish(heard[0]!, JSON.stringify({ stream: names.stream, seq: 1 }));
      await nats.nc.flush();
    } finally {
      mute.unsubscribe();
    }
  });
});
