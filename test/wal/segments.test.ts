import { ErrorCode } from '../../runtime/errors';
import { MemoryBudget, SegmentManager, type SegmentLimits } from '../../actors/wal/segments';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { createCollection, dropCollection, eventually, insert, walFixture } from '../support/wal-fixture';

const LIMITS: SegmentLimits = { maxRows: 10, maxBytes: 1000, maxIdleMs: 100, maxLifetimeMs: 1000 };

function manager(budget = new MemoryBudget(1e9, 1e9)): SegmentManager {
  return new SegmentManager(LIMITS, budget);
}

function create(m: SegmentManager, id: number, partitionId = 1, at = 0): void {
  m.created({ segmentId: id, vchannel: 'v', collectionId: 1, partitionId, maxRows: LIMITS.maxRows, maxBytes: LIMITS.maxBytes, createId: `id${id}`, createTimetick: 1n, createdAt: at });
}

describe('segment seal policies', () => {
  test('capacity: a segment that fills up is sealed; one without room for a batch is sealed and a new one is needed', () => {
    const m = manager();
    expect(m.assign('v', 1, 1, 3, 10, 0)).toMatchObject({ needSegment: true, sealed: [] });
    create(m, 1);
    expect(m.assign('v', 1, 1, 6, 10, 0)).toMatchObject({ segmentId: 1, sealed: [] });
    const r = m.assign('v', 1, 1, 5, 10, 0); // 6 + 5 > 10
    expect('needSegment' in r).toBe(true);
    expect(r.sealed.map((s) => s.segmentId)).toEqual([1]);
    create(m, 2);
    const full = m.assign('v', 1, 1, 10, 10, 0);
    expect(full).toMatchObject({ segmentId: 2 });
    expect(full.sealed.map((s) => s.segmentId)).toEqual([2]); // exactly full: sealed at once
    // bytes count too
    create(m, 3);
    expect(m.assign('v', 1, 1, 1, 999, 0).sealed).toEqual([]);
    expect(m.assign('v', 1, 1, 1, 2, 0).sealed.map((s) => s.segmentId)).toEqual([3]);
  });

  test('a batch larger than a segment is UNRECOVERABLE', () => {
    expect(() => manager().assign('v', 1, 1, 11, 1, 0)).toThrow(expect.objectContaining({ code: ErrorCode.UNRECOVERABLE }));
    expect(() => manager().assign('v', 1, 1, 1, 1001, 0)).toThrow(expect.objectContaining({ code: ErrorCode.UNRECOVERABLE }));
  });

  test('idle and lifetime', () => {
    const m = manager();
    create(m, 1, 1, 0);
    create(m, 2, 2, 0);
    create(m, 3, 3, 0);
    m.assign('v', 1, 1, 1, 1, 0); // segment 1 has a row, last written at 0
    m.assign('v', 1, 2, 1, 1, 150); // segment 2 written recently
    expect(m.dueForSeal(150).map((d) => [d.segment.segmentId, d.reason])).toEqual([[1, 'idle']]); // empty segment 3 is not idle-sealed
    expect(m.dueForSeal(1000).map((d) => [d.segment.segmentId, d.reason])).toEqual([
      [1, 'lifetime'],
      [2, 'lifetime'],
      [3, 'lifetime'],
    ]);
  });

  test('memory: above the high-water mark the largest segments are sealed until under the low-water mark', () => {
    const budget = new MemoryBudget(500, 250);
    const m = manager(budget);
    for (const [id, bytes] of [
      [1, 100],
      [2, 300],
      [3, 200],
    ] as const) {
      create(m, id, id, 0);
      m.assign('v', 1, id, 1, bytes, 0);
    }
    expect(budget.bytes).toBe(600);
    const due = m.dueForSeal(10);
    expect(due.map((d) => [d.segment.segmentId, d.reason])).toEqual([
      [2, 'memory'],
      [3, 'memory'],
    ]);
    m.flushed(2);
    expect(budget.bytes).toBe(300);
  });

  test('manual flush seals every segment of the collection not already being flushed; drop removes them', () => {
    const m = manager();
    create(m, 1, 1);
    create(m, 2, 2);
    m.get(2)!.flushRequested = true;
    expect(m.sealCollection('v', 1)).toEqual([1]);
    expect(m.drop('v', 1).map((s) => s.segmentId).sort()).toEqual([1, 2]);
    expect(m.all()).toEqual([]);
  });
});

describe('segments in the WAL', () => {
  test('idle segments are sealed on a timetick and get a Flush; a dropped collection\'s segments are not flushed', async () => {
    const fx = await walFixture(new MemoryWalBackend(), undefined, { segmentLimits: { maxRows: 1000, maxBytes: 1 << 20, maxIdleMs: 50, maxLifetimeMs: 60_000 } });
    try {
      const wal = await fx.open('s0', 1, { timetickIntervalMs: 20 });
      await wal.append(createCollection('s0_1v0', 1));
      await wal.append(createCollection('s0_2v0', 2));
      const a = await wal.append(insert('s0_1v0', 1, 3));
      await wal.append(insert('s0_2v0', 2, 3));
      await wal.append(dropCollection('s0_2v0', 2));
      await eventually(() => fx.flushQueue.jobs.length >= 1, 5_000, 'flush job of the idle segment');
      const sub = await wal.subscribe({ policy: { type: 'all' }, filters: { types: ['CreateSegment', 'Flush', 'Insert'] } });
      const got: string[] = [];
      for await (const m of sub) {
        if (m.type === 'CreateSegment') got.push(`create:${m.header.collectionId}`);
        if (m.type === 'Flush') got.push(`flush:${m.header.collectionId}`);
        if (m.type === 'Insert') got.push(`insert:${m.header.collectionId}:${m.header.segmentId > 0}`);
        if (got.includes('flush:1')) break;
      }
      sub.close();
      expect(got).toEqual(['create:1', 'insert:1:true', 'create:2', 'insert:2:true', 'flush:1']);
      expect(fx.flushQueue.jobs.map((j) => j.collectionId)).toEqual([1]);
      const job = fx.flushQueue.jobs[0]!;
      expect(job.fromId < a.id).toBe(true); // the CreateSegment precedes the insert
      expect(job.toId > a.id).toBe(true);
    } finally {
      await fx.close();
    }
  });
});
