import { expect } from 'chai';
import {
  encodeEnvelope,
  falconNames,
  messageFrame,
  splitEnvelope,
  welcomeFrame,
  decodeEnvelope,
  isEnvelope,
  MAX_PAYLOAD_DEPTH,
} from '../../src/index.js';

describe('falconNames', () => {
  it('derives every name from the namespace', () => {
    expect(falconNames('falcon')).to.deep.equal({
      namespace: 'falcon',
      stream: 'FALCON_MESSAGES',
      subject: 'falcon.messages',
      persisterConsumer: 'falcon-persister',
      deadLetterStream: 'FALCON_DEAD_LETTERS',
      deadLetterSubject: 'falcon.dead-letters',
    });
  });

  it('refuses a namespace that would make an invalid subject or stream name', () => {
    for (const bad of ['', 'Falcon', 'a.b', 'a b', '9lives', 'x'.repeat(33)]) {
      expect(() => falconNames(bad), bad).to.throw(/invalid namespace/);
    }
  });
});

describe('message envelope', () => {
  const id = '0193f3c6-5a7e-7cc2-9a4b-2f3d1c0e9b11';
  const receivedAt = '2026-11-27T10:15:30.123Z';
  const payload = '{"text":"hi \\"there\\"","n":[1,2,{"x":null}],"u":"\\u0000"}';

  it('round-trips through splitEnvelope without touching the payload text', () => {
    const envelope = encodeEnvelope(id, receivedAt, payload);
    expect(splitEnvelope(envelope)).to.deep.equal({ id, receivedAt, payloadJson: payload });
    expect(decodeEnvelope(envelope)).to.deep.equal({ id, receivedAt, payload: JSON.parse(payload) });
  });

  it('builds the contract frame with seq spliced in, as valid JSON', () => {
    const frame = JSON.parse(messageFrame(42, encodeEnvelope(id, receivedAt, payload)));
    expect(frame).to.deep.equal({ type: 'message', seq: 42, id, receivedAt, payload: JSON.parse(payload) });
    expect(Object.keys(frame)).to.deep.equal(['type', 'seq', 'id', 'receivedAt', 'payload']);
  });

  it('carries the publisher through split, decode and the frame, escaped as JSON', () => {
    for (const publisher of ['svc-a', 'a "quoted" \\ name\n', 'ünï\u2028', '\ud800']) {
      const envelope = encodeEnvelope(id, receivedAt, payload, publisher);
      expect(splitEnvelope(envelope), publisher).to.deep.equal({ id, receivedAt, publisher, payloadJson: payload });
      expect(decodeEnvelope(envelope).publisher).to.equal(publisher);
      expect(JSON.parse(messageFrame(7, envelope))).to.deep.equal({ type: 'message', seq: 7, id, receivedAt, publisher, payload: JSON.parse(payload) });
    }
  });

  it('builds the welcome frame', () => {
    expect(JSON.parse(welcomeFrame(12, true))).to.deep.equal({ type: 'welcome', lastSeq: 12, recovered: true });
  });

  it('rejects an envelope whose payload is not a JSON object, as the persister and the gateway both must', () => {
    for (const payloadJson of ['{"a":', '{"a":1}}', '"text"', '[1]', 'null', '{"a":1} trailing', '{bad}']) {
      const envelope = encodeEnvelope(id, receivedAt, payloadJson);
      expect(() => splitEnvelope(envelope), payloadJson).to.throw(/not a Falcon envelope/);
      expect(isEnvelope(envelope), payloadJson).to.equal(false);
    }
    expect(isEnvelope(encodeEnvelope(id, receivedAt, payload))).to.equal(true);
  });

  it('rejects what Postgres would refuse: an id that is not a UUID, a date that does not exist, nesting past the limit', () => {
    expect(() => splitEnvelope(encodeEnvelope('-'.repeat(36), receivedAt, '{}'))).to.throw(/id is not a UUID/);
    expect(() => splitEnvelope(encodeEnvelope(id, '2026-02-30T10:15:30.123Z', '{}'))).to.throw(/not a real instant/);
    const deep = (n: number) => `{"a":${'['.repeat(n)}${']'.repeat(n)}}`;
    expect(() => splitEnvelope(encodeEnvelope(id, receivedAt, deep(MAX_PAYLOAD_DEPTH)))).to.throw(/nests deeper/);
    expect(splitEnvelope(encodeEnvelope(id, receivedAt, deep(MAX_PAYLOAD_DEPTH - 1))).payloadJson).to.equal(deep(MAX_PAYLOAD_DEPTH - 1));
    // Brackets inside strings do not count.
    const quoted = `{"s":"${'['.repeat(3 * MAX_PAYLOAD_DEPTH)}\\\"x"}`;
    expect(splitEnvelope(encodeEnvelope(id, receivedAt, quoted)).payloadJson).to.equal(quoted);
  });

  it('rejects text that is not an envelope', () => {
    for (const bad of ['', '{}', '{"id":"x","receivedAt":"y","payload":{}}', `{"id":"${id}","receivedAt":"${receivedAt}","payload":[1]`]) {
      expect(() => splitEnvelope(bad), bad).to.throw(/not a Falcon envelope/);
    }
  });
});
