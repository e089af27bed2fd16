import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SteppableClock, seededRandom, systemClock, type Clock, type TimerHandle } from '../../runtime/clock';
import { ErrorCode, StreamingError } from '../../runtime/errors';
import { MAX_LOGICAL, composeTimetick, logicalOf, physicalOf, type Timetick } from '../../runtime/message/timetick';
import {
  FileTsoStore,
  MAX_ALLOCATE_COUNT,
  MemoryTsoStore,
  TimestampOracle,
  TsoAllocator,
  encodeTsoFile,
  type TimestampRange,
  type TimestampSource,
  type TsoStore,
} from '../../runtime/tso';

/** Wall time set by the test; timers are not used by the TSO. */
class ManualClock implements Clock {
  constructor(public nowMs: number) {}
  mono = 0;
  now(): number {
    return this.nowMs;
  }
  monotonic(): number {
    return this.mono;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return systemClock.setTimeout(fn, ms);
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    return systemClock.setInterval(fn, ms);
  }
  sleep(ms: number): Promise<void> {
    return systemClock.sleep(ms);
  }
}

/** Lets every pending promise callback run (no timers, no I/O involved). */
const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface PendingSave {
  bound: number;
  release(): void;
  fail(e: unknown): void;
}

/**
 * A store whose saves complete only when the test says so (or after one macrotask when `auto`). `durable` is
 * the bound a restart would see; `events` the order of save starts and completions.
 */
class GatedStore implements TsoStore {
  durable: number | undefined;
  auto = false;
  pending: PendingSave[] = [];
  saveCalls: number[] = [];
  constructor(initial?: number) {
    this.durable = initial;
  }
  load(): Promise<number | undefined> {
    return Promise.resolve(this.durable);
  }
  save(bound: number): Promise<void> {
    this.saveCalls.push(bound);
    if (this.auto) {
      // durable only after a macrotask: an oracle that did not await the save would hand out first
      return new Promise<void>((resolve) =>
        setImmediate(() => {
          this.durable = Math.max(this.durable ?? 0, bound);
          resolve();
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.pending.push({
        bound,
        release: () => {
          this.durable = bound;
          resolve();
        },
        fail: reject,
      });
    });
  }
  releaseAll(): void {
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p.release();
  }
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: ErrorCode): Promise<StreamingError> {
  let error: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(StreamingError);
  expect((error as StreamingError).code).toBe(code);
  return error as StreamingError;
}

function lastOf(r: TimestampRange): Timetick {
  return r.first + BigInt(r.count - 1);
}

const T0 = 1_700_000_000_000;

describe('TimestampOracle', () => {
  test('open reserves the first window before returning; first timestamp is at the clock', async () => {
    const store = new MemoryTsoStore();
    const clock = new ManualClock(T0);
    const oracle = await TimestampOracle.open({ store, clock });
    expect(store.saves).toEqual([T0 + 3000]);
    const r = await oracle.allocate(1);
    expect(r).toEqual({ first: composeTimetick(T0, 0), count: 1 });
    await oracle.close();
  });

  test('logical overflow advances the physical part by 1 ms', async () => {
    const clock = new ManualClock(T0);
    const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock });
    const a = await oracle.allocate(MAX_ALLOCATE_COUNT);
    expect(a.first).toBe(composeTimetick(T0, 0));
    expect(lastOf(a)).toBe(composeTimetick(T0, MAX_LOGICAL));
    const b = await oracle.allocate(1);
    expect(b.first).toBe(composeTimetick(T0 + 1, 0));
    // a range that crosses the boundary: consecutive integers, the tail lands in the next ms
    await oracle.allocate(MAX_LOGICAL - 4); // logical now at MAX_LOGICAL - 4
    const c = await oracle.allocate(10);
    expect(physicalOf(c.first)).toBe(T0 + 1);
    expect(logicalOf(c.first)).toBe(MAX_LOGICAL - 3);
    expect(physicalOf(lastOf(c))).toBe(T0 + 2);
    expect(logicalOf(lastOf(c))).toBe(5);
    // the frozen clock keeps advancing only through overflow
    const d = await oracle.allocate(1);
    expect(d.first).toBe(lastOf(c) + 1n);
    await oracle.close();
  });

  test('wall clock stepping back by 10 s never yields a smaller or repeated timestamp', async () => {
    const clock = new SteppableClock();
    const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock });
    const seen = new Set<Timetick>();
    let prev = -1n;
    const take = async (count: number): Promise<void> => {
      const r = await oracle.allocate(count);
      expect(r.first).toBeGreaterThan(prev);
      if (r.count <= 1000) for (let i = 0n; i < BigInt(r.count); i++) seen.add(r.first + i);
      prev = lastOf(r);
    };
    for (let i = 0; i < 100; i++) await take(7);
    const physicalBefore = physicalOf(prev);
    clock.step(-10_000);
    for (let i = 0; i < 2000; i++) await take(100);
    expect(physicalOf(prev)).toBeGreaterThanOrEqual(physicalBefore);
    clock.step(-10_000);
    for (let i = 0; i < 100; i++) await take(MAX_ALLOCATE_COUNT);
    expect(seen.size).toBe(100 * 7 + 2000 * 100); // the big ones are checked by order only
    await oracle.close();
  });

  test('bound is saved before anything in it is handed out (including across clock jumps)', async () => {
    const store = new GatedStore();
    store.auto = true;
    const clock = new ManualClock(T0);
    const oracle = await TimestampOracle.open({ store, clock, saveWindowMs: 100 });
    const rnd = seededRandom(7);
    for (let i = 0; i < 5000; i++) {
      clock.nowMs += rnd.int(4) === 0 ? rnd.int(250) : 0;
      if (rnd.int(50) === 0) clock.nowMs -= rnd.int(500);
      const r = await oracle.allocate(1 + rnd.int(MAX_ALLOCATE_COUNT));
      // no macrotask ran between hand-out and here, so `durable` is what was durable at hand-out
      expect(store.durable).toBeDefined();
      expect(physicalOf(lastOf(r))).toBeLessThanOrEqual(store.durable!);
    }
    expect(store.saveCalls.length).toBeGreaterThan(10);
    // saves only ever move forward
    for (let i = 1; i < store.saveCalls.length; i++) expect(store.saveCalls[i]!).toBeGreaterThan(store.saveCalls[i - 1]!);
    await oracle.close();
  });

  test('an allocation past the bound waits for the save; nothing is handed out before it completes', async () => {
    const store = new GatedStore();
    const clock = new ManualClock(T0);
    const opening = TimestampOracle.open({ store, clock, saveWindowMs: 3000 });
    await drain();
    expect(store.pending.map((p) => p.bound)).toEqual([T0 + 3000]);
    store.releaseAll();
    const oracle = await opening;

    clock.nowMs = T0 + 10_000; // beyond the bound
    let resolved: TimestampRange | undefined;
    const pending = oracle.allocate(5).then((r) => (resolved = r));
    const queued = oracle.allocate(5); // behind it, must not overtake
    await drain();
    expect(resolved).toBeUndefined();
    expect(store.pending.map((p) => p.bound)).toEqual([T0 + 10_000 + 3000]);
    expect(store.durable).toBe(T0 + 3000);
    store.releaseAll();
    await pending;
    expect(resolved!.first).toBe(composeTimetick(T0 + 10_000, 0));
    expect((await queued).first).toBe(composeTimetick(T0 + 10_000, 5));
    await oracle.close();
  });

  test('within a third of the window the next window is reserved in the background', async () => {
    const store = new GatedStore();
    store.auto = true;
    const clock = new ManualClock(T0);
    const oracle = await TimestampOracle.open({ store, clock, saveWindowMs: 3000 });
    store.auto = false;
    clock.nowMs = T0 + 1500; // 1500 ms from the bound: no refresh yet
    await oracle.allocate(1);
    await drain();
    expect(store.pending).toHaveLength(0);
    clock.nowMs = T0 + 2500; // 500 ms from the bound (< 1000): refresh, but do not wait for it
    const r = await oracle.allocate(1);
    expect(physicalOf(r.first)).toBe(T0 + 2500);
    expect(store.pending.map((p) => p.bound)).toEqual([T0 + 2500 + 3000]);
    // still within the old bound while the refresh is in flight: no second save, no waiting
    clock.nowMs = T0 + 2900;
    await oracle.allocate(1);
    expect(store.pending).toHaveLength(1);
    store.releaseAll();
    await drain();
    expect(oracle.reservedBoundMs).toBe(T0 + 5500);
    await oracle.close();
  });

  test('a failed save fails the allocation that needed it; the next one retries', async () => {
    const store = new GatedStore();
    store.auto = true;
    const clock = new ManualClock(T0);
    const oracle = await TimestampOracle.open({ store, clock });
    store.auto = false;
    clock.nowMs = T0 + 60_000;
    const failing = oracle.allocate(1);
    await drain();
    store.pending.shift()!.fail(new StreamingError(ErrorCode.INNER, 'disk hiccup'));
    await expectCode(failing, ErrorCode.INNER);
    store.auto = true;
    const r = await oracle.allocate(1);
    expect(physicalOf(r.first)).toBe(T0 + 60_000);
    expect(store.durable).toBeGreaterThanOrEqual(T0 + 60_000);
    await oracle.close();
  });

  test('concurrent allocate calls get disjoint ranges, also while saves are in flight', async () => {
    const store = new GatedStore();
    store.auto = true;
    const clock = new ManualClock(T0);
    const oracle = await TimestampOracle.open({ store, clock, saveWindowMs: 50 });
    store.auto = false;
    const rnd = seededRandom(42);
    const calls: Promise<TimestampRange>[] = [];
    let requested = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 25; i++) {
        const count = 1 + rnd.int(3000);
        requested += count;
        calls.push(oracle.allocate(count));
        if (rnd.int(5) === 0) clock.nowMs += rnd.int(120) - 20; // jumps forward, sometimes back
      }
      await drain();
      store.releaseAll(); // saves complete while later calls are queued
    }
    // from here on saves complete at once
    store.auto = true;
    store.releaseAll();
    const ranges = await Promise.all(calls);
    const all = new Set<Timetick>();
    let total = 0;
    for (const r of ranges) {
      for (let i = 0n; i < BigInt(r.count); i++) all.add(r.first + i);
      total += r.count;
    }
    expect(total).toBe(requested);
    expect(all.size).toBe(requested);
    // served in call order
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.first).toBeGreaterThan(lastOf(ranges[i - 1]!));
    await oracle.close();
  });

  test.each([
    ['memory', async () => ({ store: new MemoryTsoStore() as TsoStore, reopen: (s: TsoStore) => s, cleanup: async () => {} })],
    [
      'file',
      async () => {
        const dir = await mkdtemp(join(tmpdir(), 'tso-'));
        const path = join(dir, 'data', 'tso.json');
        return { store: new FileTsoStore(path) as TsoStore, reopen: () => new FileTsoStore(path), cleanup: () => rm(dir, { recursive: true, force: true }) };
      },
    ],
  ])('restart on the same %s store starts above everything handed out, even with the clock stepped back', async (_name, make) => {
    const { store, reopen, cleanup } = await make();
    try {
      const clock = new SteppableClock();
      const before = await TimestampOracle.open({ store, clock, saveWindowMs: 3000 });
      let max = 0n;
      for (let i = 0; i < 50; i++) max = lastOf(await before.allocate(MAX_ALLOCATE_COUNT)); // ~50 ms of timestamps
      const boundBefore = before.reservedBoundMs;
      await before.close();
      await expectCode(before.allocate(1), ErrorCode.ON_SHUTDOWN);

      clock.step(-60_000); // well below the old bound
      const after = await TimestampOracle.open({ store: reopen(store), clock, saveWindowMs: 3000 });
      const r = await after.allocate(1);
      expect(r.first).toBeGreaterThan(max);
      expect(physicalOf(r.first)).toBeGreaterThan(boundBefore);
      expect(after.reservedBoundMs).toBeGreaterThanOrEqual(physicalOf(r.first));
      await after.close();

      // and a third time, with the clock still behind
      const third = await TimestampOracle.open({ store: reopen(store), clock });
      expect((await third.allocate(1)).first).toBeGreaterThan(lastOf(r));
      await third.close();
    } finally {
      await cleanup();
    }
  });

  test('bad counts and options give INVALID_ARGUMENT', async () => {
    const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock: new ManualClock(T0) });
    for (const count of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_ALLOCATE_COUNT + 1, 2 ** 53]) {
      await expectCode(oracle.allocate(count), ErrorCode.INVALID_ARGUMENT);
    }
    expect((await oracle.allocate(MAX_ALLOCATE_COUNT)).count).toBe(MAX_ALLOCATE_COUNT);
    for (const saveWindowMs of [0, -5, 2.5, Number.NaN]) {
      await expectCode(TimestampOracle.open({ store: new MemoryTsoStore(), clock: new ManualClock(T0), saveWindowMs }), ErrorCode.INVALID_ARGUMENT);
    }
    const source: TimestampSource = oracle;
    for (const batchSize of [0, -1, 1.5, MAX_ALLOCATE_COUNT + 1]) {
      await expectCode(() => new TsoAllocator({ source, batchSize }), ErrorCode.INVALID_ARGUMENT);
    }
    await expectCode(new MemoryTsoStore().save(-1), ErrorCode.INVALID_ARGUMENT);
    await oracle.close();
  });

  test('close is idempotent and waits for queued allocations', async () => {
    const store = new GatedStore();
    store.auto = true;
    const clock = new ManualClock(T0);
    const oracle = await TimestampOracle.open({ store, clock });
    store.auto = false;
    clock.nowMs += 10_000;
    const queued = oracle.allocate(3);
    const c1 = oracle.close();
    const c2 = oracle.close();
    expect(c1).toBe(c2);
    await expectCode(oracle.allocate(1), ErrorCode.ON_SHUTDOWN);
    await drain();
    store.releaseAll();
    await c1;
    expect((await queued).count).toBe(3);
  });
});

describe('FileTsoStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tso-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('missing file loads as undefined; saves round-trip, create directories, leave no temp files', async () => {
    const path = join(dir, 'a', 'b', 'tso.json');
    const store = new FileTsoStore(path);
    expect(await store.load()).toBeUndefined();
    await Promise.all([store.save(100), store.save(200), store.save(300)]); // applied in call order
    expect(await store.load()).toBe(300);
    expect(await new FileTsoStore(path).load()).toBe(300);
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['tso.json']);
    expect(await readFile(path, 'utf8')).toBe(encodeTsoFile(300));
  });

  test.each([
    ['empty file', ''],
    ['garbage', 'not json at all'],
    ['truncated', encodeTsoFile(T0).slice(0, 20)],
    ['wrong shape', '[1,2,3]'],
    ['wrong version', JSON.stringify({ version: 2, upperBoundPhysicalMs: T0, checksum: 'x' })],
    ['negative bound', JSON.stringify({ version: 1, upperBoundPhysicalMs: -1, checksum: 'x' })],
    ['damaged digit', encodeTsoFile(T0).replace(String(T0), String(T0 - 600_000_000_000))],
  ])('corrupt file (%s) is UNRECOVERABLE, not a silent reset', async (_name, content) => {
    const path = join(dir, 'tso.json');
    await writeFile(path, content);
    const store = new FileTsoStore(path);
    const e = await expectCode(store.load(), ErrorCode.UNRECOVERABLE);
    expect(e.retriable).toBe(false);
    expect(e.message).toContain(path);
    await expectCode(TimestampOracle.open({ store, clock: new ManualClock(T0) }), ErrorCode.UNRECOVERABLE);
    expect(await readFile(path, 'utf8')).toBe(content); // untouched
  });
});

/** A source that counts calls and can hold back its answers (the oracle already allocated them). */
class CountingSource implements TimestampSource {
  calls = 0;
  hold = false;
  held: (() => void)[] = [];
  constructor(private readonly inner: TimestampSource) {}
  async allocate(count: number): Promise<TimestampRange> {
    this.calls++;
    const r = await this.inner.allocate(count);
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    return r;
  }
  releaseAll(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) h();
  }
}

describe('TsoAllocator', () => {
  test('strictly increasing over 1M allocations across batches', async () => {
    const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock: new SteppableClock() });
    const source = new CountingSource(oracle);
    const allocator = new TsoAllocator({ source });
    let prev = -1n;
    let violations = 0;
    for (let i = 0; i < 1_000_000; i++) {
      let tt = allocator.tryAllocate();
      if (tt === undefined) {
        await allocator.refill();
        tt = allocator.tryAllocate();
        if (tt === undefined) throw new Error('refill left the batch empty');
      }
      if (tt <= prev) violations++;
      prev = tt;
    }
    expect(violations).toBe(0);
    expect(source.calls).toBe(1000);
    await oracle.close();
  });

  test('refill is single-flight; allocate fetches as needed', async () => {
    const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock: new ManualClock(T0) });
    const source = new CountingSource(oracle);
    const allocator = new TsoAllocator({ source, batchSize: 10 });
    expect(allocator.tryAllocate()).toBeUndefined();
    const a = allocator.refill();
    const b = allocator.refill();
    expect(a).toBe(b);
    await Promise.all([a, b]);
    expect(source.calls).toBe(1);
    await allocator.refill(); // batch not empty: no request
    expect(source.calls).toBe(1);
    const values = await Promise.all(Array.from({ length: 35 }, () => allocator.allocate()));
    expect(new Set(values).size).toBe(35);
    expect(source.calls).toBe(4);
    await oracle.close();
  });

  test('source errors reach the caller and the next refill retries', async () => {
    let fail = true;
    const source: TimestampSource = {
      allocate: (count) =>
        fail ? Promise.reject(new StreamingError(ErrorCode.INNER, 'unreachable')) : Promise.resolve({ first: 1000n, count }),
    };
    const allocator = new TsoAllocator({ source, batchSize: 4 });
    await expectCode(allocator.allocate(), ErrorCode.INNER);
    fail = false;
    expect(await allocator.allocate()).toBe(1000n);
  });

  test('a source that goes backwards is UNRECOVERABLE', async () => {
    let first = 1000n;
    const source: TimestampSource = { allocate: (count) => Promise.resolve({ first, count }) };
    const allocator = new TsoAllocator({ source, batchSize: 2 });
    await allocator.allocate();
    allocator.sync();
    first = 500n;
    await expectCode(allocator.allocate(), ErrorCode.UNRECOVERABLE);
  });

  test('sync discards the batch: the next timetick is fresh and above every earlier one from any allocator', async () => {
    const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock: new ManualClock(T0) });
    const sourceA = new CountingSource(oracle);
    const a = new TsoAllocator({ source: sourceA, batchSize: 1000 });
    const b = new TsoAllocator({ source: oracle, batchSize: 7 });
    const fromA: Timetick[] = [];
    for (let i = 0; i < 5; i++) fromA.push(await a.allocate());
    let maxB = 0n;
    for (let i = 0; i < 50; i++) maxB = await b.allocate(); // b's batches all lie above a's batch
    expect(maxB).toBeGreaterThan(fromA[4]!);
    expect(a.tryAllocate()).toBeDefined(); // a still has 994 stale timeticks below maxB

    const callsBefore = sourceA.calls;
    a.sync();
    expect(a.tryAllocate()).toBeUndefined();
    const fresh = await a.allocate();
    expect(sourceA.calls).toBe(callsBefore + 1);
    expect(fresh).toBeGreaterThan(maxB);
    expect(fresh).toBeGreaterThan(fromA[4]!);
    await oracle.close();
  });

  test('sync also discards a refill that was in flight when it was called', async () => {
    const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock: new ManualClock(T0) });
    const sourceA = new CountingSource(oracle);
    const a = new TsoAllocator({ source: sourceA, batchSize: 100 });
    const b = new TsoAllocator({ source: oracle, batchSize: 3 });
    sourceA.hold = true;
    const stale = a.refill(); // the oracle allocates now; the answer is held back
    await drain();
    expect(sourceA.held).toHaveLength(1);
    a.sync();
    let maxB = 0n;
    for (let i = 0; i < 10; i++) maxB = await b.allocate(); // above the held range
    sourceA.releaseAll();
    await stale;
    expect(a.tryAllocate()).toBeUndefined(); // the stale range was not installed
    sourceA.hold = false;
    const fresh = await a.allocate();
    expect(fresh).toBeGreaterThan(maxB);
    await oracle.close();
  });

  test('syncIfExpired drops a batch older than the limit', async () => {
    const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock: new ManualClock(T0) });
    const clock = new ManualClock(T0);
    const source = new CountingSource(oracle);
    const a = new TsoAllocator({ source, batchSize: 100, clock });
    await a.allocate();
    clock.mono += 40;
    a.syncIfExpired(50);
    expect(a.tryAllocate()).toBeDefined();
    clock.mono += 20;
    a.syncIfExpired(50);
    expect(a.tryAllocate()).toBeUndefined();
    await a.allocate();
    expect(source.calls).toBe(2);
    await oracle.close();
  });
});
