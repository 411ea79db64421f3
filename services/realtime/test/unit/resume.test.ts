import { expect } from 'chai';
import { FrameHistory } from '../../src/history.js';
import { parseSince, planResume, type ResumeState } from '../../src/resume.js';

describe('FrameHistory', () => {
  it('returns every frame after since while it still holds them', () => {
    const h = new FrameHistory(3);
    for (const seq of [5, 6, 7]) h.push(seq, `f${seq}`);
    expect(h.after(4, 7)).to.deep.equal(['f5', 'f6', 'f7']);
    expect(h.after(6, 7)).to.deep.equal(['f7']);
    expect(h.after(7, 7)).to.deep.equal([]);
    expect(h.after(3, 7)).to.equal(undefined);
  });

  it('evicts the oldest frame once full', () => {
    const h = new FrameHistory(3);
    for (const seq of [1, 2, 3, 4, 5]) h.push(seq, `f${seq}`);
    expect(h.length).to.equal(3);
    expect(h.firstSeq).to.equal(3);
    expect(h.after(2, 5)).to.deep.equal(['f3', 'f4', 'f5']);
    expect(h.after(1, 5)).to.equal(undefined);
  });

  it('evicts the oldest frames to stay within its character budget', () => {
    const h = new FrameHistory(100, 25);
    for (const seq of [1, 2, 3, 4]) h.push(seq, `frame-${seq}-xx`);
    expect(h.weight).to.be.at.most(25);
    expect(h.firstSeq).to.equal(3);
    expect(h.after(2, 4)).to.deep.equal(['frame-3-xx', 'frame-4-xx']);
    expect(h.after(1, 4)).to.equal(undefined);
    h.push(5, 'x'.repeat(40));
    expect(h.length).to.equal(1);
    expect(h.after(4, 5)).to.deep.equal(['x'.repeat(40)]);
  });

  it('with no capacity only answers a client that is up to date', () => {
    const h = new FrameHistory(0);
    h.push(1, 'f1');
    expect(h.after(1, 1)).to.deep.equal([]);
    expect(h.after(0, 1)).to.equal(undefined);
  });
});

describe('planResume', () => {
  const state = (overrides: Partial<ResumeState> = {}): ResumeState => ({
    lastSeq: 100,
    streamFirstSeq: 10,
    inMemory: (since) => since >= 90,
    ...overrides,
  });

  it('goes live without recovery when no since is given', () => {
    expect(planResume(undefined, state())).to.deep.equal({ kind: 'live', recovered: false });
  });

  it('goes live, recovered, when the client is up to date', () => {
    expect(planResume(100, state())).to.deep.equal({ kind: 'live', recovered: true });
  });

  it('serves a recent resume from memory', () => {
    expect(planResume(97, state())).to.deep.equal({ kind: 'memory', fromSeq: 98 });
  });

  it('replays an older resume from the stream, starting at since + 1', () => {
    expect(planResume(9, state())).to.deep.equal({ kind: 'stream', fromSeq: 10 });
    expect(planResume(50, state())).to.deep.equal({ kind: 'stream', fromSeq: 51 });
  });

  it('reports recovered false when the stream no longer holds since + 1', () => {
    expect(planResume(8, state())).to.deep.equal({ kind: 'live', recovered: false });
  });

  it('reports recovered false when the client is ahead of the stream (stream recreated)', () => {
    expect(planResume(150, state())).to.deep.equal({ kind: 'live', recovered: false });
  });
});

describe('parseSince', () => {
  it('accepts absent and non-negative integers only', () => {
    expect(parseSince(undefined)).to.equal(undefined);
    expect(parseSince('')).to.equal(undefined);
    expect(parseSince('0')).to.equal(0);
    expect(parseSince('42')).to.equal(42);
    for (const bad of ['-1', '1.5', 'abc', '1e3', '9999999999999999']) expect(parseSince(bad), bad).to.equal('invalid');
  });
});
