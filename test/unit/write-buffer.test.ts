/**
 * The write buffer: a segment fed its messages as they are persisted is flushed from it, into
 * files byte for byte what reading its WAL range back writes (committed transactions at their
 * commit, one still open at the marker followed until it ends, deletes of its keys, nothing of
 * other segments or vchannels). Whenever the buffer cannot stand for the range — the job comes
 * before the segment is complete, the segment's first entries were never fed, it was dropped to
 * stay within maxBytes, its collection was dropped, the buffer is off — the job reads the WAL and
 * writes the same files.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { encodeMessage } from '../../runtime/message/codec';
import type { MessageId } from '../../runtime/message/message-id';
import type { Timetick } from '../../runtime/message/timetick';
import type { LogMessage } from '../../runtime/message/types';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { LocalObjectStore } from '../../storage/objects/local/local-object-store';
import { SegmentFlushWorker } from '../../storage/flush/flush-worker';
import type { FlushJob } from '../../storage/flush/flush-queue';
import { WriteBuffer, type ChannelWriteBuffer } from '../../storage/flush/write-buffer';
import { readSegment } from '../../storage/segments/segment-reader';
import { RecoveryState } from '../../actors/recovery-storage/state';
import { KEEPALIVE_MS, PCHANNEL, SCHEMA, SEGMENT, OTHER_V, Script, V } from '../support/flush-script';

const ROOT = 'seg';
const BIG = 1 << 30;

describe('WriteBuffer', () => {
  let dir: string;
  let backend: MemoryWalBackend;
  let meta: EmbeddedMetaStore;
  /** Where the worker with the write buffer writes, and where a worker reading the WAL writes the same segments. */
  let buffered: LocalObjectStore;
  let fromWal: LocalObjectStore;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-write-buffer-'));
    backend = new MemoryWalBackend();
    meta = await EmbeddedMetaStore.open({ dir: path.join(dir, 'meta') });
    buffered = await LocalObjectStore.open({ dir: path.join(dir, 'buffered'), fsync: false });
    fromWal = await LocalObjectStore.open({ dir: path.join(dir, 'wal'), fsync: false });
  });
  afterEach(async () => {
    await buffered.close();
    await fromWal.close();
    await meta.close();
    await backend.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** Appends the script's messages at term 1 of the pchannel; returns them as persisted, with their bytes. */
  async function persist(s: Script): Promise<{ messages: LogMessage[]; bytes: Uint8Array[]; ids: MessageId[] }> {
    const bytes = s.messages.map((m) => encodeMessage(m));
    const log = await backend.open({ name: PCHANNEL, term: 1, accessMode: 'rw' });
    const ids = await log.append(bytes);
    await log.close();
    const messages = s.messages.map((m, i) => ({ ...m, id: ids[i]!, size: bytes[i]!.length }) as LogMessage);
    return { messages, bytes, ids };
  }

  /** Feeds messages [from, to) to `channel` as a recovery storage does: the state first, then the buffer. */
  function feed(channel: ChannelWriteBuffer, state: RecoveryState, log: { messages: LogMessage[]; bytes: Uint8Array[] }, from = 0, to = log.messages.length): void {
    for (let i = from; i < to; i++) {
      const m = log.messages[i]!;
      channel.persisted(m, log.bytes[i]!, state.observe(m), () => SCHEMA);
    }
  }

  function jobFor(ids: MessageId[], create: number, marker: { index: number; timetick: Timetick }, segmentId = SEGMENT): FlushJob {
    return { pchannel: PCHANNEL, term: 1, segmentId, vchannel: V, collectionId: 1, partitionId: 10, schema: SCHEMA, fromId: ids[create]!, toId: ids[marker.index]!, toTimetick: String(marker.timetick) };
  }

  /** Flushes `job` with the buffer's worker, then again reading the WAL into the other store: the same objects, byte for byte. Returns the rows' keys. */
  async function flushBoth(worker: SegmentFlushWorker, job: FlushJob): Promise<number[]> {
    await worker.process(job);
    await new SegmentFlushWorker({ backend, objects: fromWal, meta, root: ROOT }).process(job);
    const keys: string[] = [];
    for await (const o of fromWal.list(`${ROOT}/`)) keys.push(o.key);
    expect(keys.length).toBeGreaterThanOrEqual(3); // inserts, deletes, manifest
    const bufferedKeys: string[] = [];
    for await (const o of buffered.list(`${ROOT}/`)) bufferedKeys.push(o.key);
    expect(bufferedKeys.sort()).toEqual([...keys].sort());
    for (const key of keys) expect({ key, same: Buffer.from(await buffered.get(key)).equals(Buffer.from(await fromWal.get(key))) }).toEqual({ key, same: true });
    const segment = await readSegment(buffered, { collectionId: 1, partitionId: 10, segmentId: job.segmentId }, { root: ROOT });
    return segment.inserts.primaryKeys.data as number[];
  }

  async function termOne(): Promise<void> {
    await meta.bumpTerm(PCHANNEL, 0); // term 1 owns the pchannel
  }

  /** The transaction-heavy range of flush-worker.test.ts, fed in one go or in two parts. */
  function busyRange(): { s: Script; create: number; marker: { index: number; timetick: Timetick }; completeAt: () => number } {
    const s = new Script();
    const create = s.createSegment();
    s.insert([1, 2]);
    s.insert([100], { segmentId: 2 });
    s.insert([200], { vchannel: OTHER_V });
    const a = s.begin();
    s.insert([3], { txn: a });
    s.end(a, 'CommitTxn');
    const b = s.begin();
    s.insert([4], { txn: b });
    s.end(b, 'RollbackTxn');
    s.delete([2, 100, 999]);
    for (let id = 5; id <= 40; id++) s.insert([id]); // single-row inserts of one shape
    const c = s.begin(); // open at the marker, committed after it
    s.insert([41], { txn: c });
    const marker = s.flushMarker();
    s.insert([42]); // after the marker
    s.end(c, 'CommitTxn');
    const completeAt = s.messages.length; // the commit of c ends the range
    s.timeTick(KEEPALIVE_MS + 1);
    return { s, create, marker, completeAt: () => completeAt };
  }

  const expectedKeys = [1, 2, 3, ...Array.from({ length: 36 }, (_, i) => i + 5), 41];

  it('flushes a segment from the buffer into the files reading its WAL range writes', async () => {
    await termOne();
    const { s, create, marker, completeAt } = busyRange();
    const log = await persist(s);
    const buffer = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    const channel = buffer.channel(PCHANNEL, 1);
    feed(channel, new RecoveryState(), log, 0, completeAt());
    expect(buffer.stats).toMatchObject({ segments: 1, taken: 0 });
    expect(buffer.stats.heldBytes).toBeGreaterThan(0);

    const worker = new SegmentFlushWorker({ backend, objects: buffered, meta, root: ROOT, writeBuffer: buffer });
    expect(await flushBoth(worker, jobFor(log.ids, create, marker))).toEqual(expectedKeys);
    expect(worker.sources).toEqual({ writeBuffer: 1, wal: 0 });
    expect(buffer.stats).toEqual({ segments: 0, heldBytes: 0, taken: 1, evicted: 0, missed: 0 });
    expect(channel.size).toBe(0);

    // A retry finds nothing left in the buffer: it reads the WAL, and writes the same files.
    await worker.process(jobFor(log.ids, create, marker));
    expect(worker.sources).toEqual({ writeBuffer: 1, wal: 1 });
  });

  it('a job that comes before its segment is complete (a transaction still open) reads the WAL', async () => {
    await termOne();
    const { s, create, marker, completeAt } = busyRange();
    const log = await persist(s);
    const buffer = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    feed(buffer.channel(PCHANNEL, 1), new RecoveryState(), log, 0, completeAt() - 1); // not the commit
    const worker = new SegmentFlushWorker({ backend, objects: buffered, meta, root: ROOT, writeBuffer: buffer });
    expect(await flushBoth(worker, jobFor(log.ids, create, marker))).toEqual(expectedKeys);
    expect(worker.sources).toEqual({ writeBuffer: 0, wal: 1 });
    expect(buffer.stats).toEqual({ segments: 0, heldBytes: 0, taken: 0, evicted: 0, missed: 1 });
  });

  it('a segment whose CreateSegment was not fed (created before this owner) is not buffered', async () => {
    await termOne();
    const { s, create, marker } = busyRange();
    const log = await persist(s);
    const buffer = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    feed(buffer.channel(PCHANNEL, 1), new RecoveryState(), log, create + 1);
    expect(buffer.stats.segments).toBe(0);
    const worker = new SegmentFlushWorker({ backend, objects: buffered, meta, root: ROOT, writeBuffer: buffer });
    expect(await flushBoth(worker, jobFor(log.ids, create, marker))).toEqual(expectedKeys);
    expect(worker.sources).toEqual({ writeBuffer: 0, wal: 1 });
  });

  it('beyond maxBytes the largest segment leaves the buffer and is flushed from the WAL', async () => {
    await termOne();
    const s = new Script();
    const createSmall = s.createSegment(2);
    const createLarge = s.createSegment(SEGMENT);
    s.insert([1], { segmentId: 2 });
    const probeEnd = s.messages.length;
    s.insert(Array.from({ length: 1100 }, (_, i) => 1000 + i)); // past the first batch buffers (1024 rows): they grow 4-fold
    s.insert([2], { segmentId: 2 });
    const markerSmall = s.flushMarker(2);
    const markerLarge = s.flushMarker(SEGMENT);
    const log = await persist(s);

    // What one small segment holds: its first record batch buffers.
    const probe = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    feed(probe.channel(PCHANNEL, 1), new RecoveryState(), log, 0, probeEnd);
    const small = probe.stats.heldBytes / 2; // both segments, one row each so far
    expect(small).toBeGreaterThan(0);

    const buffer = new WriteBuffer({ maxBytes: Math.floor(3 * small), root: ROOT });
    const channel = buffer.channel(PCHANNEL, 1);
    feed(channel, new RecoveryState(), log);
    expect(buffer.stats).toMatchObject({ segments: 1, evicted: 1 });
    expect(channel.size).toBe(1);
    expect(buffer.stats.heldBytes).toBeLessThanOrEqual(3 * small);

    const worker = new SegmentFlushWorker({ backend, objects: buffered, meta, root: ROOT, writeBuffer: buffer });
    expect(await flushBoth(worker, jobFor(log.ids, createSmall, markerSmall, 2))).toEqual([1, 2]);
    expect(worker.sources).toEqual({ writeBuffer: 1, wal: 0 });
    await worker.process(jobFor(log.ids, createLarge, markerLarge));
    expect(worker.sources).toEqual({ writeBuffer: 1, wal: 1 });
    const large = await readSegment(buffered, { collectionId: 1, partitionId: 10, segmentId: SEGMENT }, { root: ROOT });
    expect(large.inserts.primaryKeys.data).toEqual(Array.from({ length: 1100 }, (_, i) => 1000 + i));
  });

  it('drops the segments of a dropped collection, of a closed pchannel, and one flushed elsewhere', async () => {
    const s = new Script();
    s.createSegment();
    s.insert([1]);
    s.createSegment(2);
    s.insert([2], { segmentId: 2 });
    const beforeDrop = s.messages.length;
    s.dropCollection();
    const log = await persist(s);

    const buffer = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    const channel = buffer.channel(PCHANNEL, 1);
    const state = new RecoveryState();
    feed(channel, state, log, 0, beforeDrop);
    expect(buffer.stats.segments).toBe(2);
    channel.drop(2); // its flush was committed by another process
    expect([buffer.stats.segments, channel.size]).toEqual([1, 1]);
    feed(channel, state, log, beforeDrop);
    expect(buffer.stats).toMatchObject({ segments: 0, heldBytes: 0 });

    const again = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    const other = again.channel(PCHANNEL, 1);
    feed(other, new RecoveryState(), log, 0, beforeDrop);
    expect(again.stats.segments).toBe(2);
    other.close();
    expect(again.stats).toMatchObject({ segments: 0, heldBytes: 0 });
  });

  it('reuses the batch buffers of a written segment for the next one, whose files are still exactly its own', async () => {
    await termOne();
    const s = new Script();
    const createFirst = s.createSegment(SEGMENT);
    s.insert(Array.from({ length: 1100 }, (_, i) => 1000 + i)); // batch buffers grow past 1024 rows: outgrown ones are pooled too
    const markerFirst = s.flushMarker(SEGMENT);
    const firstEnd = s.messages.length;
    const createSecond = s.createSegment(2);
    for (let id = 1; id <= 30; id++) s.insert([id], { segmentId: 2 }); // fewer rows: stale bytes lie past them in reused buffers
    s.delete([3, 4000]);
    const markerSecond = s.flushMarker(2);
    const log = await persist(s);
    const buffer = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    const channel = buffer.channel(PCHANNEL, 1);
    const state = new RecoveryState();
    const worker = new SegmentFlushWorker({ backend, objects: buffered, meta, root: ROOT, writeBuffer: buffer });
    feed(channel, state, log, 0, firstEnd);
    expect(await flushBoth(worker, jobFor(log.ids, createFirst, markerFirst))).toEqual(Array.from({ length: 1100 }, (_, i) => 1000 + i));
    feed(channel, state, log, firstEnd);
    expect(await flushBoth(worker, jobFor(log.ids, createSecond, markerSecond, 2))).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(worker.sources).toEqual({ writeBuffer: 2, wal: 0 });
    const second = await readSegment(buffered, { collectionId: 1, partitionId: 10, segmentId: 2 }, { root: ROOT });
    expect(second.deletes.primaryKeys.data).toEqual([3]);
  });

  it('a job of another term or range finds nothing, and its segment leaves the buffer', async () => {
    await termOne();
    const { s, create, marker, completeAt } = busyRange();
    const log = await persist(s);
    const buffer = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    const feedAll = (): void => feed(buffer.channel(PCHANNEL, 1), new RecoveryState(), log, 0, completeAt());
    feedAll();
    const job = jobFor(log.ids, create, marker);
    expect(buffer.take({ ...job, term: 2 })).toBeUndefined(); // another term: another owner's segment
    expect(buffer.stats.segments).toBe(1);
    expect(buffer.take({ ...job, toId: log.ids[marker.index - 1]! })).toBeUndefined(); // not the range it was fed
    expect(buffer.stats).toMatchObject({ segments: 0, heldBytes: 0, missed: 1 });
    feedAll();
    buffer.discard(job); // a fenced job's segment
    expect(buffer.stats).toMatchObject({ segments: 0, heldBytes: 0, taken: 0 });
  });

  it('a segment that fails to encode leaves the buffer, and its flush from the WAL fails the same way', async () => {
    await termOne();
    const { s, create, marker, completeAt } = busyRange();
    const log = await persist(s);
    const buffer = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    const otherDim = { fields: SCHEMA.fields.map((f) => (f.type === 'floatVector' ? { ...f, dim: 4 } : f)) };
    const channel = buffer.channel(PCHANNEL, 1);
    const state = new RecoveryState();
    for (let i = 0; i < completeAt(); i++) channel.persisted(log.messages[i]!, log.bytes[i]!, state.observe(log.messages[i]!), () => otherDim);
    expect(buffer.stats).toMatchObject({ segments: 0, heldBytes: 0, missed: 1 });
    const worker = new SegmentFlushWorker({ backend, objects: buffered, meta, root: ROOT, writeBuffer: buffer });
    await expect(worker.process({ ...jobFor(log.ids, create, marker), schema: otherDim })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(worker.sources).toEqual({ writeBuffer: 0, wal: 0 });

    // A failure outside a segment (here: a schema no segment can have) stops buffering the pchannel at this term.
    const broken = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    const brokenChannel = broken.channel(PCHANNEL, 1);
    const brokenState = new RecoveryState();
    for (let i = 0; i < completeAt(); i++) brokenChannel.persisted(log.messages[i]!, log.bytes[i]!, brokenState.observe(log.messages[i]!), () => ({ fields: [] }));
    expect(broken.stats).toMatchObject({ segments: 0, heldBytes: 0, missed: 1 });
    feed(brokenChannel, new RecoveryState(), log, 0, completeAt()); // a valid schema now: still nothing buffered
    expect(broken.stats.segments).toBe(0);
  });

  it('keeps the rows of a transaction begun before the segment (its first insert created the segment), both ways', async () => {
    await termOne();
    const s = new Script();
    const early = s.begin(); // BeginTxn before the segment's CreateSegment
    const rolledBack = s.begin(); // the same, rolled back inside the range
    const create = s.createSegment();
    s.insert([7, 8], { txn: early });
    s.insert([50], { txn: rolledBack });
    s.insert([1]);
    s.end(early, 'CommitTxn');
    s.end(rolledBack, 'RollbackTxn');
    const marker = s.flushMarker();
    const log = await persist(s);
    const buffer = new WriteBuffer({ maxBytes: BIG, root: ROOT });
    feed(buffer.channel(PCHANNEL, 1), new RecoveryState(), log);
    const worker = new SegmentFlushWorker({ backend, objects: buffered, meta, root: ROOT, writeBuffer: buffer });
    expect(await flushBoth(worker, jobFor(log.ids, create, marker))).toEqual([1, 7, 8]); // the transaction's rows at its commit
    expect(worker.sources).toEqual({ writeBuffer: 1, wal: 0 });
  });

  it('over maxBytes a complete segment no job took leaves before a growing one', async () => {
    await termOne();
    const s = new Script();
    const createSmall = s.createSegment(2);
    s.insert([1], { segmentId: 2 });
    const markerSmall = s.flushMarker(2); // complete, its job not run yet
    s.createSegment(SEGMENT);
    s.insert(Array.from({ length: 4096 }, (_, i) => 1000 + i)); // growing: a batch of 4096 rows, 4 times the small one's first 1024
    const log = await persist(s);
    const held = (from: number, to: number): number => {
      const probe = new WriteBuffer({ maxBytes: BIG, root: ROOT });
      feed(probe.channel(PCHANNEL, 1), new RecoveryState(), log, from, to);
      return probe.stats.heldBytes;
    };
    const small = held(0, 2);
    const large = held(3, 5);
    expect(large).toBeGreaterThan(small);
    // Room for the large one, not for both: the largest would be the large one, the complete one is the small one.
    const buffer = new WriteBuffer({ maxBytes: large + Math.floor(small / 2), root: ROOT });
    feed(buffer.channel(PCHANNEL, 1), new RecoveryState(), log);
    expect(buffer.stats).toMatchObject({ segments: 1, evicted: 1, heldBytes: large });
    expect(buffer.take(jobFor(log.ids, createSmall, markerSmall, 2))).toBeUndefined(); // the complete one left
  });

  it('with maxBytes 0 nothing is buffered', async () => {
    const { s, completeAt } = busyRange();
    const log = await persist(s);
    const buffer = new WriteBuffer({ maxBytes: 0, root: ROOT });
    feed(buffer.channel(PCHANNEL, 1), new RecoveryState(), log, 0, completeAt());
    expect(buffer.stats).toEqual({ segments: 0, heldBytes: 0, taken: 0, evicted: 0, missed: 0 });
    expect(() => new WriteBuffer({ maxBytes: -1, root: ROOT })).toThrow(/maxBytes/);
  });
});
