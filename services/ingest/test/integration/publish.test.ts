import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { expect } from 'chai';
import { decodeEnvelope, DEFAULT_STREAM_OPTIONS, ensureMessagesStream } from '@falcon/shared';
import { createPublisher, type Publisher } from '../../src/publisher.js';
import { testNats, type TestNats } from '../../../../test-support/infra.js';

describe('ingest publisher against JetStream', function () {
  let nats: TestNats;
  let jsm: JetStreamManager;
  let publisher: Publisher;

  before(async () => {
    nats = await testNats();
    jsm = await jetstreamManager(nats.nc);
    await ensureMessagesStream(jsm, nats.names, DEFAULT_STREAM_OPTIONS);
    publisher = createPublisher({ js: jetstream(nats.nc), jsm, names: nats.names, timeoutMs: 5000 });
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

  it('creates and updates the stream idempotently, from any number of callers at once', async () => {
    const options = { ...DEFAULT_STREAM_OPTIONS, duplicateWindowMs: 180_000 };
    const infos = await Promise.all([1, 2, 3].map(() => ensureMessagesStream(jsm, nats.names, options)));
    for (const info of infos) expect(info.config.duplicate_window).to.equal(180_000 * 1e6);
    expect(infos[0]!.config.subjects).to.deep.equal([nats.names.subject]);
  });
});
