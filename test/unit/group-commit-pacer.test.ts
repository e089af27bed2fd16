import { GroupCommitPacer, MIN_SPLIT_GROUP } from '../../actors/wal/group-commit-pacer';

/** A pacer that observed `n` groups: `busyMs` of main-thread work per wave of 64 appends, writes of `writeMs` back to back. */
function pacer(busyMs: number, writeMs: number, n = 1): GroupCommitPacer {
  const p = new GroupCommitPacer();
  feed(p, busyMs, writeMs, n, 0);
  return p;
}

function feed(p: GroupCommitPacer, busyMs: number, writeMs: number, n: number, from: number): number {
  let t = from;
  for (let i = 0; i < n; i++) {
    p.observeBusy(64, busyMs);
    p.observeWrite(t, (t += writeMs));
  }
  return t;
}

describe('GroupCommitPacer', () => {
  test('merges (splits nothing) before both costs are known and before the first decision', () => {
    const p = new GroupCommitPacer();
    expect(p.decide(64)).toBe(false);
    p.observeBusy(64, 0.64);
    expect(p.decide(64)).toBe(false);
    const q = pacer(0.64, 0.3);
    expect(q.firstGroupLimit(64, 2)).toBe(64);
    expect(q.overlap).toBe(false);
  });

  test('splits a burst in two once a write is measured faster than the wave of appends', () => {
    const p = pacer(0.64, 0.3); // 10 µs of work per append; a write takes 0.3 ms
    expect(p.decide(64)).toBe(true);
    expect(p.overlap).toBe(true);
    expect(p.firstGroupLimit(64, 2)).toBe(32);
    expect(p.firstGroupLimit(63, 2)).toBe(32);
  });

  test('keeps one group when a write takes longer than the wave (slow disk, remote backend)', () => {
    const p = pacer(0.64, 2);
    expect(p.decide(64)).toBe(false);
    expect(p.firstGroupLimit(64, 2)).toBe(64);
  });

  test('never splits small bursts or without a second free slot', () => {
    const p = pacer(6.4, 0.01);
    expect(p.decide(64)).toBe(true);
    expect(p.firstGroupLimit(2 * MIN_SPLIT_GROUP - 1, 2)).toBe(2 * MIN_SPLIT_GROUP - 1);
    expect(p.firstGroupLimit(64, 1)).toBe(64);
  });

  test('a write queued behind the previous one is measured from when that one finished', () => {
    const p = new GroupCommitPacer();
    p.observeBusy(64, 0.64);
    p.observeWrite(0, 0.3); // alone: 0.3 ms
    p.observeWrite(0.1, 0.6); // queued until 0.3: 0.3 ms of service, not 0.5
    expect(p.snapshot().writeMs).toBeCloseTo(0.3, 6);
    expect(p.decide(64)).toBe(true);
  });

  test('judges the whole wave: the same costs merge for a small one', () => {
    // 16 appends take 0.16 ms of work: a merged write of 0.4 ms is more than twice that.
    expect(pacer(0.64, 0.4).decide(16)).toBe(false);
    expect(pacer(0.64, 0.4).decide(64)).toBe(true);
  });

  test('a choice holds for a window of writes after it changed, then follows a disk that slows down', () => {
    const p = pacer(0.64, 0.3);
    expect(p.decide(64)).toBe(true);
    let t = feed(p, 0.64, 3, 10, 100);
    expect(p.decide(64)).toBe(true); // held: 10 writes since the switch
    t = feed(p, 0.64, 3, 10, t);
    expect(p.decide(64)).toBe(false);
    expect(p.firstGroupLimit(64, 2)).toBe(64);
  });

  test('an odd slow write (or a garbage-collection pause) does not flip the choice', () => {
    const p = pacer(0.32, 0.2, 20);
    expect(p.decide(64)).toBe(true);
    p.observeWrite(100, 103); // one fsync of 3 ms
    p.observeBusy(64, 20); // one long pause
    expect(p.decide(64)).toBe(true);
    expect(p.snapshot().writeMs).toBeCloseTo(0.2, 6);
  });

  test('allows for the write(2) a merged write includes and overlapping hides: merged < 2 × work, overlapped < 1.5 × work', () => {
    // The wave's work: 0.32 ms. Merged: write(2) + sync.
    expect(pacer(0.32, 0.6).decide(64)).toBe(true); // 0.6 < 0.64
    expect(pacer(0.32, 0.7).decide(64)).toBe(false); // 0.7 ≥ 0.64
    // Overlapping, a period of 0.45 ms (< 0.48) goes on; of 0.5 ms it goes back.
    const p = pacer(0.32, 0.6);
    expect(p.decide(64)).toBe(true);
    let t = feed(p, 0.32, 0.45, 15, 100);
    expect(p.decide(64)).toBe(true);
    t = feed(p, 0.32, 0.5, 15, t);
    expect(p.decide(64)).toBe(false);
  });

  test('a steady disk does not make the choice flap: merged and overlapped writes of the same sync lead to the same choice', () => {
    // Sync T = 0.45 ms, write(2) W = T / 3 = 0.15 ms, work B = 0.32 ms: T < B + W, so overlap, and stay.
    const p = pacer(0.32, 0.6); // merged: W + T
    expect(p.decide(64)).toBe(true);
    let t = 100;
    for (let round = 0; round < 5; round++) {
      t = feed(p, 0.32, 0.45, 15, t); // overlapped: T
      expect(p.decide(64)).toBe(true);
    }
    // Just under the threshold: T = 0.475 ms (merged 0.633 < 0.64; overlapped 0.475 < 0.48): overlap, and stay.
    const r = pacer(0.32, 0.633);
    expect(r.decide(64)).toBe(true);
    for (let round = 0; round < 5; round++) {
      t = feed(r, 0.32, 0.475, 15, t);
      expect(r.decide(64)).toBe(true);
    }
    // Sync T = 0.5 ms, W = 0.167: T ≥ B + W = 0.487, so merge, and stay.
    const q = pacer(0.32, 0.667);
    expect(q.decide(64)).toBe(false);
    for (let round = 0; round < 5; round++) {
      t = feed(q, 0.32, 0.667, 15, t);
      expect(q.decide(64)).toBe(false);
    }
  });
});
