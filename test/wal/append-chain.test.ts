/**
 * The append chain's contract (interceptor.ts): an append is answered exactly once, and what an
 * interceptor holds (a vchannel lock) is released exactly once, even when a caller's answer
 * callback throws.
 */
import { buildChain } from '../../actors/wal/interceptors/chain';
import type { AppendDone, AppendNext } from '../../actors/wal/interceptors/interceptor';
import { LockInterceptor } from '../../actors/wal/interceptors/lock';
import { ShardInterceptor } from '../../actors/wal/interceptors/shard';
import { VChannelLocks } from '../../actors/wal/locks';
import { MemoryBudget, SegmentManager, DEFAULT_SEGMENT_LIMITS } from '../../actors/wal/segments';
import { VChannelMeta } from '../../actors/wal/vchannel-meta';
import type { CollectionSchema, Column, Message } from '../../runtime/message/types';

const V = 'chain_1v0';

function setup(schema: CollectionSchema, innermost: AppendNext): { chain: AppendNext; locks: VChannelLocks } {
  const meta = new VChannelMeta();
  meta.apply({
    type: 'CreateCollection',
    vchannel: V,
    timetick: 1n,
    lastConfirmedId: '',
    term: 1,
    header: { collectionId: 1, partitionIds: [10] },
    body: { collectionName: 'c', schema, partitions: [{ id: 10, name: '_default' }] },
  });
  const segments = new SegmentManager(DEFAULT_SEGMENT_LIMITS, new MemoryBudget(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
  segments.created({ segmentId: 7, vchannel: V, collectionId: 1, partitionId: 10, maxRows: 1000, maxBytes: 1 << 20, createId: '1', createTimetick: 1n, createdAt: 0 });
  const locks = new VChannelLocks();
  const chain = buildChain(
    [
      new LockInterceptor({ locks, txns: { failAt: () => 0 } }),
      new ShardInterceptor({ meta, segments, now: () => 0, createSegment: () => Promise.resolve(), flushSegments: () => undefined }),
    ],
    innermost,
  );
  return { chain, locks };
}

function insert(columns: Column[]): Message {
  return { type: 'Insert', vchannel: V, timetick: 0n, lastConfirmedId: '', term: 0, header: { collectionId: 1, partitionId: 10, rows: 0, bytes: 0, segmentId: 0 }, body: { columns } };
}

const AUTO_ID: CollectionSchema = { fields: [{ name: 'id', type: 'int64', primaryKey: true, autoId: true }, { name: 'vec', type: 'floatVector', dim: 2 }] };
const PLAIN: CollectionSchema = { fields: [{ name: 'id', type: 'int64', primaryKey: true }, { name: 'vec', type: 'floatVector', dim: 2 }] };

describe('append chain', () => {
  it.each<[string, CollectionSchema, Column[]]>([
    ['an autoId insert', AUTO_ID, [{ name: 'vec', type: 'floatVector', dim: 2, data: new Float32Array([1, 2]) }]],
    ['a plain insert', PLAIN, [{ name: 'id', type: 'int64', data: [1] }, { name: 'vec', type: 'floatVector', dim: 2, data: new Float32Array([1, 2]) }]],
  ])('%s answered at once by the pipe, to a callback that throws: answered once, its lock released once', (_what, schema, columns) => {
    const { chain, locks } = setup(schema, (_m, done) => done({ ok: false, error: new Error('pipe refused') }));
    let answers = 0;
    const done: AppendDone = () => {
      answers++;
      throw new Error('caller callback failed');
    };
    expect(() => chain(insert(columns), done)).toThrow('caller callback failed');
    expect(answers).toBe(1);
    // Balanced: a reader holds the lock now, so a writer must wait (a second release would have let it in).
    expect(locks.acquire(V, false)).toBeUndefined();
    expect(locks.acquire(V, true)).toBeInstanceOf(Promise);
  });

  it('an autoId insert gets its generated keys in the answer and in the body written', () => {
    let written: Message | undefined;
    const { chain } = setup(AUTO_ID, (m, done) => {
      written = m;
      done({ ok: true, value: { id: '5', timetick: 9n, lastConfirmedId: '4' } });
    });
    const answers: unknown[] = [];
    chain(insert([{ name: 'vec', type: 'floatVector', dim: 2, data: new Float32Array([1, 2, 3, 4]) }]), (o) => answers.push(o));
    expect(answers).toEqual([{ ok: true, value: { id: '5', timetick: 9n, lastConfirmedId: '4', extra: { autoIds: { first: 7 * 2 ** 21, count: 2 } } } }]);
    expect(written?.type === 'Insert' && written.body.columns[0]).toEqual({ name: 'id', type: 'int64', data: [7 * 2 ** 21, 7 * 2 ** 21 + 1] });
  });
});
