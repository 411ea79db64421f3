import { expect } from 'chai';
import { createSilentLogger, encodeEnvelope } from '@falcon/shared';
import { createBatchHandler, nakDelay, type Delivery } from '../../src/batch.js';
import { copyLine, type DeadLetter, type MessageRow, type MessageStore } from '../../src/store.js';

interface Tracked extends Delivery {
  acked: number;
  naked: number[];
}

function delivery(seq: number, text: string, deliveryCount = 1): Tracked {
  const d: Tracked = {
    seq,
    deliveryCount,
    acked: 0,
    naked: [],
    text: () => text,
    ack: () => {
      d.acked += 1;
    },
    nak: (ms) => {
      d.naked.push(ms);
    },
  };
  return d;
}

const envelope = (n: number) => encodeEnvelope(`0193f3c6-5a7e-7cc2-9a4b-${String(n).padStart(12, '0')}`, '2026-11-27T10:15:30.123Z', `{"n":${n}}`);

/** A store that keeps rows in memory and fails as told. */
function fakeStore(options: { failWith?: (rows: MessageRow[]) => Error | undefined; deadLetterFails?: boolean } = {}) {
  const rows = new Map<number, MessageRow>();
  const deadLetters: DeadLetter[] = [];
  const store: MessageStore = {
    async insert(batch) {
      const err = options.failWith?.(batch);
      if (err) throw err;
      let inserted = 0;
      for (const row of batch) {
        if (!rows.has(row.seq)) {
          rows.set(row.seq, row);
          inserted += 1;
        }
      }
      return inserted;
    },
    async deadLetter(entry) {
      if (options.deadLetterFails) throw Object.assign(new Error('down'), { code: '08006' });
      deadLetters.push(entry);
    },
  };
  return { store, rows, deadLetters };
}

const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code });

describe('persister batch handler', () => {
  it('stores a batch in one insert and acks every message after it', async () => {
    const { store, rows } = fakeStore();
    const batch = [1, 2, 3].map((n) => delivery(n, envelope(n)));
    const outcome = await createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 5 })(batch);
    expect(outcome).to.deep.equal({ stored: 3, duplicates: 0, deadLettered: 0, retried: 0, databaseDown: false });
    expect(batch.map((d) => d.acked)).to.deep.equal([1, 1, 1]);
    expect(rows.get(2)).to.deep.equal({ seq: 2, id: '0193f3c6-5a7e-7cc2-9a4b-000000000002', receivedAt: '2026-11-27T10:15:30.123Z', payloadJson: '{"n":2}' });
  });

  it('counts a redelivered message as a duplicate and still acks it', async () => {
    const { store } = fakeStore();
    const handle = createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 5 });
    await handle([delivery(1, envelope(1))]);
    const again = delivery(1, envelope(1), 2);
    const outcome = await handle([again, delivery(2, envelope(2))]);
    expect(outcome).to.include({ stored: 1, duplicates: 1 });
    expect(again.acked).to.equal(1);
  });

  it('naks the whole batch with a delay and reports the database down on a connection error', async () => {
    const { store, rows } = fakeStore({ failWith: () => pgError('57P01') });
    const batch = [delivery(1, envelope(1), 1), delivery(2, envelope(2), 3)];
    const outcome = await createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 2 })(batch);
    expect(outcome).to.include({ retried: 2, databaseDown: true, deadLettered: 0 });
    expect(batch.map((d) => d.naked)).to.deep.equal([[500], [2000]]);
    expect(batch.map((d) => d.acked)).to.deep.equal([0, 0]);
    expect(rows.size).to.equal(0);
  });

  it('dead-letters only the message the database rejects and stores the rest of its batch', async () => {
    const { store, rows, deadLetters } = fakeStore({ failWith: (batch) => (batch.some((r) => r.seq === 2) ? pgError('22P02') : undefined) });
    const batch = [1, 2, 3].map((n) => delivery(n, envelope(n)));
    const outcome = await createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 5 })(batch);
    expect(outcome).to.deep.equal({ stored: 2, duplicates: 0, deadLettered: 1, retried: 0, databaseDown: false });
    expect([...rows.keys()]).to.deep.equal([1, 3]);
    expect(deadLetters).to.have.length(1);
    expect(deadLetters[0]).to.include({ seq: 2, deliveries: 1, envelope: envelope(2) });
    expect(deadLetters[0]!.reason).to.match(/22P02/);
    expect(batch.map((d) => d.acked)).to.deep.equal([1, 1, 1]);
  });

  it('dead-letters a stream message that is not an envelope without touching the others', async () => {
    const { store, rows, deadLetters } = fakeStore();
    const batch = [delivery(1, envelope(1)), delivery(2, 'garbage'), delivery(3, envelope(3))];
    const outcome = await createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 5 })(batch);
    expect(outcome).to.include({ stored: 2, deadLettered: 1 });
    expect([...rows.keys()]).to.deep.equal([1, 3]);
    expect(deadLetters[0]).to.include({ seq: 2, id: null, envelope: 'garbage' });
    expect(deadLetters[0]!.reason).to.match(/undecodable/);
  });

  it('retries a message failing alone until maxDeliver, then dead-letters it', async () => {
    const failing = (batch: MessageRow[]) => (batch.some((r) => r.seq === 2) ? (batch.length > 1 ? pgError('22000') : pgError('57014')) : undefined);
    const { store, deadLetters } = fakeStore({ failWith: failing });
    const handle = createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 3 });
    const early = delivery(2, envelope(2), 1);
    await handle([delivery(1, envelope(1)), early]);
    expect(early.naked).to.have.length(1);
    expect(deadLetters).to.have.length(0);
    const last = delivery(2, envelope(2), 3);
    await handle([delivery(3, envelope(3)), last]);
    expect(last.acked).to.equal(1);
    expect(deadLetters).to.have.length(1);
    expect(deadLetters[0]!.reason).to.match(/57014/);
  });

  it('keeps a message for redelivery when even the dead-letter write fails', async () => {
    const { store } = fakeStore({ deadLetterFails: true });
    const bad = delivery(1, 'garbage');
    const outcome = await createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 5 })([bad]);
    expect(outcome).to.include({ retried: 1, deadLettered: 0 });
    expect(bad.acked).to.equal(0);
    expect(bad.naked).to.have.length(1);
  });

  it('backs redelivery off from 0.5 s doubling to 30 s', () => {
    expect([1, 2, 3, 4, 7, 8, 100].map(nakDelay)).to.deep.equal([500, 1000, 2000, 4000, 30000, 30000, 30000]);
  });
});

describe('copyLine', () => {
  it('escapes what COPY text format treats specially and nothing else', () => {
    const row = { seq: 7, id: '0193f3c6-5a7e-7cc2-9a4b-000000000007', receivedAt: '2026-11-27T10:15:30.123Z', payloadJson: '{"a":"x\\\\y\\"z",\n\t"b":"\\u0000"}\r' };
    expect(copyLine(row)).to.equal('7\t0193f3c6-5a7e-7cc2-9a4b-000000000007\t2026-11-27T10:15:30.123Z\t{"a":"x\\\\\\\\y\\\\"z",\\n\\t"b":"\\\\u0000"}\\r\t\\N\n');
    expect(copyLine({ ...row, payloadJson: '{"plain":1}' })).to.equal('7\t0193f3c6-5a7e-7cc2-9a4b-000000000007\t2026-11-27T10:15:30.123Z\t{"plain":1}\t\\N\n');
  });

  it('writes the publisher as text, escaped the same way, and NULL as \\N when absent', () => {
    const row = { seq: 8, id: '0193f3c6-5a7e-7cc2-9a4b-000000000008', receivedAt: '2026-11-27T10:15:30.123Z', payloadJson: '{}', publisher: 'svc\\a\tb' };
    expect(copyLine(row)).to.equal('8\t0193f3c6-5a7e-7cc2-9a4b-000000000008\t2026-11-27T10:15:30.123Z\t{}\tsvc\\\\a\\tb\n');
  });
});
