import { GroupCommitPacer, MIN_SPLIT_GROUP } from '../../actors/wal/group-commit-pacer';

describe('GroupCommitPacer', () => {
  test('splits nothing before both costs are known', () => {
    const p = new GroupCommitPacer();
    expect(p.firstGroupLimit(64, 2)).toBe(64);
    p.observeEncoding(64, 0.64);
    expect(p.firstGroupLimit(64, 2)).toBe(64);
  });

  test('splits a burst in two when a write is faster than encoding the burst', () => {
    const p = new GroupCommitPacer();
    p.observeEncoding(64, 0.64); // 10 µs per append: 0.64 ms for the burst
    p.observeWrite(100, 100.3); // a write takes 0.3 ms
    expect(p.firstGroupLimit(64, 2)).toBe(32);
    expect(p.firstGroupLimit(63, 2)).toBe(32);
  });

  test('keeps one group when a write takes longer than encoding the burst (slow disk, remote backend)', () => {
    const p = new GroupCommitPacer();
    p.observeEncoding(64, 0.64);
    p.observeWrite(100, 102); // 2 ms
    expect(p.firstGroupLimit(64, 2)).toBe(64);
  });

  test('never splits small bursts or without a second free slot', () => {
    const p = new GroupCommitPacer();
    p.observeEncoding(64, 6.4);
    p.observeWrite(100, 100.01);
    expect(p.firstGroupLimit(2 * MIN_SPLIT_GROUP - 1, 2)).toBe(2 * MIN_SPLIT_GROUP - 1);
    expect(p.firstGroupLimit(64, 1)).toBe(64);
  });

  test('a write queued behind the previous one is measured from when that one finished', () => {
    const p = new GroupCommitPacer();
    p.observeEncoding(64, 0.64);
    p.observeWrite(0, 0.3); // alone: 0.3 ms
    p.observeWrite(0.1, 0.6); // queued until 0.3: 0.3 ms of service, not 0.5
    expect(p.snapshot().writeMs).toBeCloseTo(0.3, 6);
    expect(p.firstGroupLimit(64, 2)).toBe(32);
  });

  test('overlaps while a write is faster than encoding the wave, merges otherwise and while costs are unknown', () => {
    const p = new GroupCommitPacer();
    expect(p.shouldOverlap(64)).toBe(false);
    p.observeEncoding(64, 0.64);
    p.observeWrite(0, 0.3);
    expect(p.shouldOverlap(64)).toBe(true);
    expect(p.shouldOverlap(16)).toBe(false); // 16 appends encode in 0.16 ms < 0.3 ms
  });

  test('follows a disk that slows down', () => {
    const p = new GroupCommitPacer();
    p.observeEncoding(64, 0.64);
    let t = 0;
    p.observeWrite(t, (t += 0.3));
    expect(p.firstGroupLimit(64, 2)).toBe(32);
    for (let i = 0; i < 20; i++) p.observeWrite(t, (t += 3));
    expect(p.firstGroupLimit(64, 2)).toBe(64);
  });
});
