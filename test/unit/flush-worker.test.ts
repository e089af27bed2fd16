/**
 * The flush worker on a hand-written WAL range: only the segment's inserts (committed transactions
 * at their commit, rolled back and expired ones not, nothing of other segments or vchannels, nothing
 * outside a transaction after the flush marker) and the deletes of its keys reach the files, which
 * are byte for byte what encodeSegment makes of the same rows; the commit record says what was written.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';
import { encodeMessage } from '../../runtime/message/codec';
import type { MessageId } from '../../runtime/message/message-id';
import type { Timetick } from '../../runtime/message/timetick';
import type { Message } from '../../runtime/message/types';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { pchannelKey } from '../../storage/meta/meta-store';
import { LocalObjectStore } from '../../storage/objects/local/local-object-store';
import { SegmentFlushWorker, type FlushedSegment } from '../../storage/flush/flush-worker';
import { flushedKeyPath, type FlushJob } from '../../storage/flush/flush-queue';
import { encodeSegment, type DeleteBatch, type InsertBatch } from '../../storage/segments/segment-writer';
import { readSegment } from '../../storage/segments/segment-reader';
import { KEEPALIVE_MS, OTHER_V, PCHANNEL, SCHEMA, SEGMENT, Script, V, columns } from '../support/flush-script';

describe('SegmentFlushWorker', () => {
  let dir: string;
  let backend: MemoryWalBackend;
  let meta: EmbeddedMetaStore;
  let objects: LocalObjectStore;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-flush-worker-'));
    backend = new MemoryWalBackend();
    meta = await EmbeddedMetaStore.open({ dir: path.join(dir, 'meta') });
    objects = await LocalObjectStore.open({ dir: path.join(dir, 'objects'), fsync: false });
  });
  afterEach(async () => {
    await objects.close();
    await meta.close();
    await backend.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function writeLog(messages: Message[]): Promise<MessageId[]> {
    const log = await backend.open({ name: PCHANNEL, term: 1, accessMode: 'rw' });
    const ids = await log.append(messages.map((m) => encodeMessage(m)));
    await log.close();
    return ids;
  }

  async function jobFor(ids: MessageId[], from: number, marker: { index: number; timetick: Timetick }): Promise<FlushJob> {
    await meta.bumpTerm(PCHANNEL, await meta.pchannelTerm(PCHANNEL));
    return {
      pchannel: PCHANNEL,
      term: await meta.pchannelTerm(PCHANNEL),
      segmentId: SEGMENT,
      vchannel: V,
      collectionId: 1,
      partitionId: 10,
      schema: SCHEMA,
      fromId: ids[from]!,
      toId: ids[marker.index]!,
      toTimetick: String(marker.timetick),
    };
  }

  it('writes the committed rows of the segment and the deletes of its keys, exactly as encodeSegment does', async () => {
    const s = new Script();
    const inserts: InsertBatch[] = [];
    const deletes: DeleteBatch[] = [];
    const create = s.createSegment();
    inserts.push({ timetick: s.insert([1, 2]), columns: columns([1, 2]) });
    s.insert([100], { segmentId: 2 }); // another segment
    s.insert([200], { vchannel: OTHER_V }); // another vchannel
    const a = s.begin();
    s.insert([3], { txn: a });
    inserts.push({ timetick: s.end(a, 'CommitTxn'), columns: columns([3]) }); // at the commit's timetick
    const b = s.begin();
    s.insert([4], { txn: b });
    s.end(b, 'RollbackTxn');
    deletes.push({ timetick: s.delete([2, 100, 999]), primaryKeys: { type: 'int64', data: [2] } });
    deletes.push({ timetick: s.delete([1], { partitionId: -1 }), primaryKeys: { type: 'int64', data: [1] } }); // every partition
    s.delete([1], { partitionId: 11 }); // another partition
    const e = s.begin();
    s.delete([3], { txn: e });
    deletes.push({ timetick: s.end(e, 'CommitTxn'), primaryKeys: { type: 'int64', data: [3] } });
    inserts.push({ timetick: s.insert([5, 6, 7]), columns: columns([5, 6, 7]) });
    const c = s.begin(); // open at the marker, committed after it: followed
    s.insert([8], { txn: c });
    const d = s.begin(); // open at the marker, expires after it
    s.insert([9], { txn: d });
    const marker = s.flushMarker();
    s.insert([10]); // after the marker
    inserts.push({ timetick: s.end(c, 'CommitTxn'), columns: columns([8]) });
    s.timeTick(KEEPALIVE_MS + 1); // expires d: the range is complete
    s.end(d, 'CommitTxn'); // too late, and never read
    const ids = await writeLog(s.messages);
    const job = await jobFor(ids, create, marker);

    const worker = new SegmentFlushWorker({ backend, objects, meta, root: 'seg' });
    await worker.process(job);

    const ref = { collectionId: 1, partitionId: 10, segmentId: SEGMENT };
    const expected = encodeSegment({ ...ref, schema: SCHEMA, inserts, deletes }, { root: 'seg' });
    for (const [key, bytes] of expected.files) expect({ key, same: Buffer.from(await objects.get(key)).equals(Buffer.from(bytes)) }).toEqual({ key, same: true });

    const segment = await readSegment(objects, ref, { root: 'seg' });
    expect(segment.inserts.primaryKeys.data).toEqual([1, 2, 3, 5, 6, 7, 8]);
    expect([...segment.inserts.timeticks]).toEqual([inserts[0]!.timetick, inserts[0]!.timetick, inserts[1]!.timetick, ...Array(3).fill(inserts[2]!.timetick), inserts[3]!.timetick]);
    expect(segment.deletes.primaryKeys.data).toEqual([2, 1, 3]);
    const table = tableFromIPC(await objects.get(expected.paths.inserts));
    expect(table.getChild('tag')!.toArray()).toEqual(['row-1-é', 'row-2-é', 'row-3-é', 'row-5-é', 'row-6-é', 'row-7-é', 'row-8-é']);
    expect(JSON.parse(table.getChild('meta')!.get(6) as string)).toEqual({ id: 8, tags: ['a', null] });
    expect(Array.from(table.getChild('vec')!.get(3)!.toArray() as Float32Array)).toEqual([5, -5, Math.fround(5 / 3)]);

    const record = JSON.parse((await meta.get(pchannelKey(PCHANNEL, flushedKeyPath(SEGMENT))))!.value) as FlushedSegment;
    expect(record).toEqual({
      segmentId: SEGMENT,
      collectionId: 1,
      partitionId: 10,
      vchannel: V,
      rows: 7,
      deletes: 3,
      manifest: expected.paths.manifest,
      term: job.term,
      flushTimetick: String(marker.timetick),
    });

    // A retried job writes the same files and commits again.
    await worker.process(job);
    expect(Buffer.from(await objects.get(expected.paths.manifest)).equals(Buffer.from(expected.files.get(expected.paths.manifest)!))).toBe(true);
  });

  it('writes an empty segment when the range holds none of its rows', async () => {
    const s = new Script();
    const create = s.createSegment();
    s.insert([1], { segmentId: 2 });
    const marker = s.flushMarker();
    const job = await jobFor(await writeLog(s.messages), create, marker);
    await new SegmentFlushWorker({ backend, objects, meta, root: 'seg' }).process(job);
    const segment = await readSegment(objects, { collectionId: 1, partitionId: 10, segmentId: SEGMENT }, { root: 'seg' });
    expect(segment.inserts.rows).toBe(0);
    expect(segment.deletes.rows).toBe(0);
    expect(segment.manifest.timetick).toBeUndefined();
  });
});
