import { expect } from 'chai';
import { dayStart, expiredPartitions, parsePartitionName, partitionFor } from '../../src/partitions.js';
import { loadRetentionConfig } from '../../src/retention.js';

describe('day partitions', () => {
  it('names a day by its UTC date and bounds it from midnight to midnight', () => {
    expect(partitionFor(new Date('2026-11-28T23:59:59.999Z'))).to.deep.equal({
      name: 'messages_p20261128',
      from: '2026-11-28T00:00:00.000Z',
      to: '2026-11-29T00:00:00.000Z',
    });
    expect(partitionFor(new Date('2026-11-29T00:00:00.000Z')).name).to.equal('messages_p20261129');
    expect(dayStart(new Date('2024-02-29T12:00:00Z')).toISOString()).to.equal('2024-02-29T00:00:00.000Z');
  });

  it('reads a partition back from its name and ignores every other table', () => {
    expect(parsePartitionName('messages_p20261231')).to.deep.equal(partitionFor(new Date('2026-12-31T05:00:00Z')));
    for (const other of ['messages_default', 'messages', 'messages_p2026123', 'dead_letters']) expect(parsePartitionName(other), other).to.equal(undefined);
  });

  it('expires only days that ended at least RETENTION_DAYS ago', () => {
    const names = ['messages_default', 'messages_p20261120', 'messages_p20261121', 'messages_p20261122', 'messages_p20261128'];
    // 7 days before 2026-11-28T12:00Z is 2026-11-21T12:00Z: the 20th has ended by then, the 21st has not.
    expect(expiredPartitions(names, new Date('2026-11-28T12:00:00Z'), 7)).to.deep.equal(['messages_p20261120']);
    expect(expiredPartitions(names, new Date('2026-11-29T00:00:00Z'), 7)).to.deep.equal(['messages_p20261120', 'messages_p20261121']);
  });
});

describe('loadRetentionConfig', () => {
  it('keeps everything when RETENTION_DAYS is unset', () => {
    expect(loadRetentionConfig({}).retentionDays).to.equal(undefined);
    expect(loadRetentionConfig({ RETENTION_DAYS: '30' }).retentionDays).to.equal(30);
  });

  it('rejects a RETENTION_DAYS that is not a whole number of days from 1', () => {
    for (const bad of ['0', '-1', '1.5', 'week']) expect(() => loadRetentionConfig({ RETENTION_DAYS: bad }), bad).to.throw(/RETENTION_DAYS/);
  });
});
