/**
 * Recovery storage across a crash between its two writes (metadata first, checkpoint after) and
 * after a flush commit its owner never learned of: the state recovered from the MetaStore plus the
 * replay equals the state before the crash (found by test/crash/cluster-crash.test.ts).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { systemClock } from '../../runtime/clock';
import { createLogger } from '../../runtime/logger';
import { encodeMessage } from '../../runtime/message/codec';
import type { LogMessage, Message } from '../../runtime/message/types';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import type { WalLog } from '../../storage/wal/backend';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { pchannelKey, type KeyWrite, type MetaStore } from '../../storage/meta/meta-store';
import { flushedKeyPath } from '../../storage/flush/flush-queue';
import { RecoveryState } from '../../actors/recovery-storage/state';
import { loadRecoveryState, persistRecoveryState } from '../../actors/recovery-storage/persisted';
import { recover } from '../../actors/recovery-storage/replay';

const P = 'r0';
const V = 'r0_1v0';
const SEGMENT = 7;

function base<T extends Message['type']>(type: T, timetick: bigint): { type: T; vchannel: string; timetick: bigint; lastConfirmedId: string; term: number } {
  return { type, vchannel: type === 'TimeTick' ? '' : V, timetick, lastConfirmedId: '', term: 1 };
}

const createSegment = (tt: bigint): Message => ({ ...base('CreateSegment', tt), header: { collectionId: 1, partitionId: 10, segmentId: SEGMENT, maxRows: 1000, maxBytes: 1 << 20 }, body: {} });
const insert = (tt: bigint, rows: number): Message => ({
  ...base('Insert', tt),
  header: { collectionId: 1, partitionId: 10, rows, bytes: rows * 10, segmentId: SEGMENT },
  body: { columns: [{ name: 'id', type: 'int64', data: Array.from({ length: rows }, (_, i) => Number(tt) * 100 + i) }] },
});
const flush = (tt: bigint): Message => ({ ...base('Flush', tt), header: { collectionId: 1, partitionId: 10, segmentId: SEGMENT }, body: {} });
const tick = (tt: bigint): Message => ({ ...base('TimeTick', tt), header: {}, body: {} });

/** A MetaStore whose process "dies" (the write fails) when it is about to write the checkpoint. */
function crashBeforeCheckpoint(meta: MetaStore): MetaStore {
  return new Proxy(meta, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (prop !== 'casOwnerWrite') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      return async (pchannel: string, term: number, writes: readonly KeyWrite[]) => {
        if (writes.some((w) => w.key === pchannelKey(pchannel, 'checkpoint'))) throw new Error('killed after the metadata, before the checkpoint');
        return target.casOwnerWrite(pchannel, term, writes);
      };
    },
  });
}

describe('recovery storage across a crash', () => {
  let dir: string;
  let meta: EmbeddedMetaStore;
  let backend: MemoryWalBackend;
  let log: WalLog;
  let state: RecoveryState;

  const write = async (m: Message): Promise<void> => {
    const [id] = await log.append([encodeMessage(m)]);
    state.observe({ ...m, id: id!, size: 0 } as LogMessage);
  };

  const reopen = async (): Promise<RecoveryState> => {
    const [untilId] = await log.append([encodeMessage(tick(1_000n))]);
    return (await recover({ pchannel: P, log, meta, untilId: untilId!, clock: systemClock, logger: createLogger('test') })).state;
  };

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-recovery-'));
    meta = await EmbeddedMetaStore.open({ dir });
    await meta.bumpTerm(P, 0);
    backend = new MemoryWalBackend();
    log = await backend.open({ name: P, term: 1, accessMode: 'rw' });
    state = new RecoveryState();
  });

  afterEach(async () => {
    await backend.close();
    await meta.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('segment meta written, checkpoint not: the replay does not count the inserts it already holds again', async () => {
    await write(createSegment(10n));
    await write(insert(11n, 3));
    await persistRecoveryState(meta, P, 1, state);
    await write(insert(12n, 2));
    await write(insert(13n, 4));
    await expect(persistRecoveryState(crashBeforeCheckpoint(meta), P, 1, state)).rejects.toThrow('before the checkpoint');
    // Persisted: the segment with 9 rows; the checkpoint still at the first insert.
    expect(JSON.parse((await meta.get(pchannelKey(P, `segment/${SEGMENT}`)))!.value)).toMatchObject({ rows: 9, bytes: 90 });
    const recovered = await reopen();
    expect(recovered.segments.get(SEGMENT)).toMatchObject({ state: 'growing', rows: 9, bytes: 90, insertTimetick: '13' });
    expect(recovered.segments.get(SEGMENT)).toEqual(state.segments.get(SEGMENT));
  });

  test('a flush committed after the owner last wrote the segment meta: the next owner completes the record and rewrites it as flushed', async () => {
    await write(createSegment(10n));
    await write(insert(11n, 3));
    await persistRecoveryState(meta, P, 1, state);
    // Two more rows and the flush marker; the flush worker commits the segment (5 rows); the owner
    // dies before it persists the segment again.
    await write(insert(12n, 2));
    await write(flush(13n));
    await meta.casOwnerWrite(P, 1, [{ key: pchannelKey(P, flushedKeyPath(SEGMENT)), value: '{}' }]);
    const loaded = await loadRecoveryState(meta, P);
    expect(loaded.state.segments.get(SEGMENT)).toMatchObject({ state: 'growing', rows: 3 });
    expect([...loaded.flushed]).toEqual([SEGMENT]);
    const recovered = await reopen();
    expect(recovered.segments.get(SEGMENT)).toEqual({ ...state.segments.get(SEGMENT), state: 'flushed' });
    expect(recovered.segments.get(SEGMENT)).toMatchObject({ rows: 5, bytes: 50 });
    expect(recovered.pendingFlush()).toEqual([]);
    await persistRecoveryState(meta, P, 1, recovered);
    expect(JSON.parse((await meta.get(pchannelKey(P, `segment/${SEGMENT}`)))!.value)).toMatchObject({ state: 'flushed', rows: 5, flushTimetick: '13' });
  });
});
