import { expect } from 'chai';
import { createSilentLogger, encodeEnvelope } from '@falcon/shared';
import { createBatchHandler, FailureCounts, nakDelay, type Delivery } from '../../src/batch.js';
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

  it('retries a message failing alone until it has failed maxDeliver times, then dead-letters it', async () => {
    const failing = (batch: MessageRow[]) => (batch.some((r) => r.seq === 2) ? (batch.length > 1 ? pgError('22000') : pgError('57014')) : undefined);
    const { store, deadLetters } = fakeStore({ failWith: failing });
    const handle = createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 3 });
    const attempts = [1, 2, 3].map((n) => delivery(2, envelope(2), n));
    for (const d of attempts) await handle([delivery(10 + d.deliveryCount, envelope(10 + d.deliveryCount)), d]);
    expect(attempts.map((d) => d.naked)).to.deep.equal([[500], [1000], []]);
    expect(attempts.map((d) => d.acked)).to.deep.equal([0, 0, 1]);
    expect(deadLetters).to.have.length(1);
    expect(deadLetters[0]!.reason).to.match(/57014/);
  });

  it('does not count deliveries during a database outage against a message', async () => {
    let databaseDown = true;
    const failing = (batch: MessageRow[]) => {
      if (databaseDown) return pgError('08006');
      return batch.some((r) => r.seq === 2) ? (batch.length > 1 ? pgError('22000') : pgError('57014')) : undefined;
    };
    const { store, deadLetters } = fakeStore({ failWith: failing });
    const handle = createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 3 });
    // A long outage: the message is delivered and naked far more often than maxDeliver.
    for (let n = 1; n <= 20; n++) {
      const outcome = await handle([delivery(1, envelope(1), n), delivery(2, envelope(2), n)]);
      expect(outcome).to.include({ databaseDown: true, deadLettered: 0 });
    }
    databaseDown = false;
    // Back up: the message now fails on its own, for the first time. It is retried, not dead-lettered.
    const first = delivery(2, envelope(2), 21);
    const outcome = await handle([delivery(1, envelope(1), 21), first]);
    expect(outcome).to.include({ stored: 1, retried: 1, deadLettered: 0 });
    expect(first.naked).to.deep.equal([500]);
    expect(deadLetters).to.have.length(0);
    // Its budget is its own failures: two more and it goes.
    await handle([delivery(2, envelope(2), 22)]);
    expect(deadLetters).to.have.length(0);
    await handle([delivery(2, envelope(2), 23)]);
    expect(deadLetters).to.have.length(1);
    expect(deadLetters[0]).to.include({ seq: 2, deliveries: 23 });
  });

  it('naks the rest of a split batch without counting when the database goes away during it', async () => {
    let inserts = 0;
    const failing = (batch: MessageRow[]) => {
      inserts += 1;
      if (batch.length > 1) return pgError('22000');
      return batch[0]!.seq === 1 ? undefined : pgError('08006');
    };
    const { store, rows, deadLetters } = fakeStore({ failWith: failing });
    const handle = createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 1 });
    const batch = [1, 2, 3, 4].map((n) => delivery(n, envelope(n), 5));
    const outcome = await handle(batch);
    expect(outcome).to.deep.equal({ stored: 1, duplicates: 0, deadLettered: 0, retried: 3, databaseDown: true });
    expect([...rows.keys()]).to.deep.equal([1]);
    expect(deadLetters).to.have.length(0);
    expect(batch.map((d) => d.naked.length)).to.deep.equal([0, 1, 1, 1]);
    // The batch, seq 1 alone, seq 2 alone; seqs 3 and 4 are not tried against a database that is gone.
    expect(inserts).to.equal(3);
  });

  it('dead-letters at once a message the database refuses for good', async () => {
    const { store, deadLetters } = fakeStore({ failWith: (batch) => (batch.some((r) => r.seq === 2) ? pgError('22P02') : undefined) });
    const outcome = await createBatchHandler({ store, log: createSilentLogger(), maxDeliver: 10 })([delivery(2, envelope(2), 1)]);
    expect(outcome).to.include({ deadLettered: 1, retried: 0 });
    expect(deadLetters).to.have.length(1);
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

describe('FailureCounts', () => {
  it('counts per seq, forgets on request and keeps at most its capacity, oldest out first', () => {
    const counts = new FailureCounts(2);
    expect([counts.add(1), counts.add(1), counts.add(2)]).to.deep.equal([1, 2, 1]);
    counts.add(3);
    expect(counts.size).to.equal(2);
    expect(counts.add(1), 'seq 1 was the oldest, so it was forgotten').to.equal(1);
    counts.forget(1);
    expect(counts.add(3)).to.equal(2);
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
