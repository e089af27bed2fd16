/**
 * Segments end to end in standalone: inserts fill growing segments, capacity and manual flush seal
 * them, the flush worker writes Arrow files, recovery storage checkpoints and truncates the WAL,
 * and a restart recovers from the checkpoint.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';
import { loadConfig } from '../../config/load';
import { StandaloneServer } from '../../runtime/server/standalone';
import { pchannelKey } from '../../storage/meta/meta-store';
import { readSegment } from '../../storage/segments/segment-reader';
import { segmentFilePath } from '../../storage/segments/layout';
import { flushedKeyPath } from '../../storage/flush/flush-queue';
import { SegmentFlushWorker } from '../../storage/flush/flush-worker';
import { ErrorCode } from '../../runtime/errors';
import { SCHEMA, eventually, flushedSegments, schemaRows } from '../support/wal-fixture';
import { pchannelOf } from '../../runtime/message/types';

function config(dataDir: string, extra: Record<string, string> = {}) {
  return loadConfig({
    flags: {
      dataDir,
      'wal.local.fsync': 'interval',
      'wal.timetickIntervalMs': '50',
      'segment.maxRows': '50',
      'recovery.persistIntervalMs': '100',
      'recovery.maxDirtyMessages': '20',
      ...extra,
    },
  });
}

const rows = schemaRows;

describe('segments, flush and recovery (standalone)', () => {
  let dir: string;
  let server: StandaloneServer | undefined;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-flush-'));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('round trip: rows across segments sealed by capacity and manual flush come back from the Arrow files exactly', async () => {
    server = await StandaloneServer.start(config(dir));
    const c = server.client;
    const info = await c.createCollection({ name: 'docs', schema: SCHEMA });
    const vchannel = info.vchannels[0]!;
    const pchannel = pchannelOf(vchannel);
    for (let i = 0; i < 13; i++) await c.insert({ collection: 'docs', columns: rows(1 + i * 10, 10) }); // 130 rows
    const flush = await c.flush('docs');
    expect(flush.segments).toHaveLength(1);
    expect(flush.segments[0]!.segmentIds.length).toBeGreaterThanOrEqual(1); // the growing remainder
    await eventually(async () => (await flushedSegments(server!, pchannel)).reduce((n, s) => n + s.rows, 0) === 130, 15_000, 'all rows flushed');
    const segs = await flushedSegments(server, pchannel);
    expect(segs.length).toBeGreaterThanOrEqual(3); // 50 + 50 + 30
    for (const s of segs) expect(s.rows).toBeLessThanOrEqual(50);
    const seen = new Map<number, { vec: number[]; tag: string }>();
    for (const s of segs) {
      const seg = await readSegment(server.objects, { collectionId: s.collectionId, partitionId: s.partitionId, segmentId: s.segmentId }, { root: server.config.objectStore.rootPath });
      expect(seg.inserts.rows).toBe(s.rows);
      const ids = seg.inserts.primaryKeys.data as number[];
      const vec = seg.inserts.columns.find((x) => x.name === 'vec')!;
      const tag = seg.inserts.columns.find((x) => x.name === 'tag')!;
      ids.forEach((id, i) => {
        expect(seen.has(id)).toBe(false);
        seen.set(id, { vec: Array.from((vec.data as Float32Array).subarray(i * 4, i * 4 + 4)), tag: (tag.data as string[])[i]! });
      });
      // Any Arrow reader can read the inserts file.
      const bytes = await server.objects.get(segmentFilePath(server.config.objectStore.rootPath, { collectionId: s.collectionId, partitionId: s.partitionId, segmentId: s.segmentId }, 'inserts'));
      const table = tableFromIPC(bytes);
      expect(table.numRows).toBe(s.rows);
      expect(Number(table.getChild('id')!.get(0))).toBe(ids[0]);
    }
    expect(seen.size).toBe(130);
    for (let id = 1; id <= 130; id++) {
      const r = seen.get(id)!;
      expect(r.tag).toBe(`row-${id}`);
      expect(r.vec).toEqual([id, Math.fround(id / 3), -id, Math.fround(0.1)]);
    }
    // Every segment was encoded in the write buffer as it grew, and written from there on a flush thread.
    expect(server.flushWorker.sources).toEqual({ writeBuffer: segs.length, wal: 0 });
    expect(server.flushWorker.writeBuffer!.stats).toMatchObject({ segments: 0, heldBytes: 0, taken: segs.length });
    // Reading each segment's WAL range back writes the very same files (a different manifest would be a SegmentConflictError).
    const fromWal = new SegmentFlushWorker({ backend: server.walBackend, objects: server.objects, meta: server.meta, root: server.config.objectStore.rootPath });
    const term = (await c.status()).pchannels.find((p) => p.name === pchannel)!.term;
    for (const s of segs) {
      const seg = JSON.parse((await server.meta.get(pchannelKey(pchannel, `segment/${s.segmentId}`)))!.value) as { createId: string; flushId: string; flushTimetick: string };
      await fromWal.process({ pchannel, term, segmentId: s.segmentId, vchannel, collectionId: info.id, partitionId: s.partitionId, schema: SCHEMA, fromId: seg.createId, toId: seg.flushId, toTimetick: seg.flushTimetick });
    }
    expect(fromWal.sources).toEqual({ writeBuffer: 0, wal: segs.length });
  });

  test('with flush.writeBufferBytes = 0 every flush reads its segment back from the WAL', async () => {
    server = await StandaloneServer.start(config(dir, { 'flush.writeBufferBytes': '0' }));
    expect(server.flushWorker.writeBuffer).toBeUndefined();
    const c = server.client;
    const info = await c.createCollection({ name: 'docs', schema: SCHEMA });
    const pchannel = pchannelOf(info.vchannels[0]!);
    for (let i = 0; i < 6; i++) await c.insert({ collection: 'docs', columns: rows(1 + i * 10, 10) }); // 60 rows: 50 + 10
    await c.flush('docs');
    await eventually(async () => (await flushedSegments(server!, pchannel)).reduce((n, s) => n + s.rows, 0) === 60, 15_000, 'all rows flushed');
    const segs = await flushedSegments(server, pchannel);
    expect(server.flushWorker.sources).toEqual({ writeBuffer: 0, wal: segs.length });
    const keys: number[] = [];
    for (const s of segs) keys.push(...((await readSegment(server.objects, s, { root: server.config.objectStore.rootPath })).inserts.primaryKeys.data as number[]));
    expect(keys.sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  });

  test('a fenced owner\'s flush job is rejected and leaves no committed segment', async () => {
    server = await StandaloneServer.start(config(dir));
    const c = server.client;
    const info = await c.createCollection({ name: 'docs', schema: SCHEMA });
    const vchannel = info.vchannels[0]!;
    const pchannel = pchannelOf(vchannel);
    await c.insert({ collection: 'docs', columns: rows(1, 20) });
    const flushed = await c.flush('docs');
    const realId = flushed.segments[0]!.segmentIds[0]!;
    await eventually(async () => (await flushedSegments(server!, pchannel)).length === 1, 10_000, 'real segment flushed');
    await eventually(async () => JSON.parse((await server!.meta.get(pchannelKey(pchannel, `segment/${realId}`)))?.value ?? '{}').flushId !== undefined, 5_000);
    const seg = JSON.parse((await server.meta.get(pchannelKey(pchannel, `segment/${realId}`)))!.value) as { createId: string; flushId: string; flushTimetick: string };
    const term = (await c.status()).pchannels.find((p) => p.name === pchannel)!.term;
    const job = { pchannel, term, segmentId: 777_000, vchannel, collectionId: info.id, partitionId: info.partitions[0]!.id, schema: SCHEMA, fromId: seg.createId, toId: seg.flushId, toTimetick: seg.flushTimetick };

    // 1. Stale term: refused before any work.
    const worker = new SegmentFlushWorker({ backend: server.walBackend, objects: server.objects, meta: server.meta, root: server.config.objectStore.rootPath });
    await expect(worker.process({ ...job, term: term - 1 })).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });

    // 2. The pchannel moves while the job is writing its files: the commit (a term CAS) is refused.
    const objects = server.objects;
    const moving = Object.create(objects) as typeof objects;
    let moved = false;
    moving.put = async (key, data, opts) => {
      if (!moved) {
        moved = true;
        await c.transfer(pchannel);
      }
      return objects.put(key, data, opts);
    };
    const racing = new SegmentFlushWorker({ backend: server.walBackend, objects: moving, meta: server.meta, root: server.config.objectStore.rootPath });
    await expect(racing.process(job)).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    expect(moved).toBe(true);
    expect(await server.meta.get(pchannelKey(pchannel, flushedKeyPath(777_000)))).toBeUndefined();
    expect((await flushedSegments(server, pchannel)).map((s) => s.segmentId)).toEqual([realId]);
  });

  test('flush jobs run on flush threads (flush.threads, default 2), which end when the server closes', async () => {
    server = await StandaloneServer.start(config(dir));
    const c = server.client;
    const info = await c.createCollection({ name: 'docs', schema: SCHEMA });
    const vchannel = info.vchannels[0]!;
    const pchannel = pchannelOf(vchannel);
    const threads = server.flushWorker.threads!;
    expect(threads.size).toBe(2);
    expect(threads.live).toHaveLength(0); // started by the first flush job
    for (let i = 0; i < 12; i++) await c.insert({ collection: 'docs', columns: rows(1 + i * 10, 10) }); // 120 rows: 50 + 50 + 20
    await c.flush('docs');
    await eventually(async () => (await flushedSegments(server!, pchannel)).reduce((n, s) => n + s.rows, 0) === 120, 15_000, 'all rows flushed');
    expect(threads.live.length).toBeGreaterThanOrEqual(1);
    const exits = threads.live.map((t) => new Promise<number>((resolve) => t.worker.once('exit', resolve)));
    await server.close();
    server = undefined;
    expect(await Promise.all(exits)).toEqual(exits.map(() => 0));
    expect(threads.live).toHaveLength(0);
  });

  test('with flush.threads = 0 flush jobs run on the main thread', async () => {
    server = await StandaloneServer.start(config(dir, { 'flush.threads': '0' }));
    expect(server.flushWorker.threads).toBeUndefined();
    const c = server.client;
    const info = await c.createCollection({ name: 'docs', schema: SCHEMA });
    const pchannel = pchannelOf(info.vchannels[0]!);
    await c.insert({ collection: 'docs', columns: rows(1, 20) });
    await c.flush('docs');
    await eventually(async () => (await flushedSegments(server!, pchannel)).reduce((n, s) => n + s.rows, 0) === 20, 15_000, 'all rows flushed');
    expect(server.flushWorker.sources).toEqual({ writeBuffer: 1, wal: 0 }); // written from the write buffer, on this thread
  });

  test('a transaction whose first insert creates the segment keeps its rows in the flushed segment, from the buffer and from the WAL', async () => {
    for (const writeBufferBytes of ['0', String(64 * 1024 * 1024)]) {
      server = await StandaloneServer.start(config(path.join(dir, writeBufferBytes), { 'flush.writeBufferBytes': writeBufferBytes }));
      const c = server.client;
      const info = await c.createCollection({ name: 'docs', schema: SCHEMA });
      const pchannel = pchannelOf(info.vchannels[0]!);
      const txn = await c.beginTxn('docs'); // no segment yet: its first insert creates one, after the BeginTxn
      await txn.insert(rows(1, 5));
      await c.insert({ collection: 'docs', columns: rows(6, 2) });
      await txn.insert(rows(8, 3));
      await txn.commit();
      await c.flush('docs');
      await eventually(async () => (await flushedSegments(server!, pchannel)).length === 1, 15_000, 'segment flushed');
      const [s] = await flushedSegments(server, pchannel);
      const keys = (await readSegment(server.objects, s!, { root: server.config.objectStore.rootPath })).inserts.primaryKeys.data as number[];
      expect({ writeBufferBytes, keys: [...keys].sort((a, b) => a - b) }).toEqual({ writeBufferBytes, keys: Array.from({ length: 10 }, (_, i) => i + 1) });
      expect(server.flushWorker.sources).toEqual(writeBufferBytes === '0' ? { writeBuffer: 0, wal: 1 } : { writeBuffer: 1, wal: 0 });
      await server.close();
      server = undefined;
    }
  });

  test('a segment that grew before a restart is flushed from the WAL after it, with every row', async () => {
    server = await StandaloneServer.start(config(dir));
    const c = server.client;
    const info = await c.createCollection({ name: 'docs', schema: SCHEMA });
    const pchannel = pchannelOf(info.vchannels[0]!);
    await c.insert({ collection: 'docs', columns: rows(1, 20) }); // growing at the restart
    await server.close();
    server = await StandaloneServer.start(config(dir));
    await server.client.insert({ collection: 'docs', columns: rows(21, 10) }); // same segment (30 < 50 rows)
    await server.client.flush('docs');
    await eventually(async () => (await flushedSegments(server!, pchannel)).reduce((n, s) => n + s.rows, 0) === 30, 15_000, 'all rows flushed');
    expect(server.flushWorker.sources).toEqual({ writeBuffer: 0, wal: 1 });
    const [s] = await flushedSegments(server, pchannel);
    expect((await readSegment(server.objects, s!, { root: server.config.objectStore.rootPath })).inserts.primaryKeys.data).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  test('recovery checkpoint persists, the WAL is truncated below flushed data, and a restart recovers from the checkpoint', async () => {
    server = await StandaloneServer.start(config(dir, { 'wal.local.segmentBytes': '4096' }));
    const c = server.client;
    const info = await c.createCollection({ name: 'docs', schema: SCHEMA });
    const vchannel = info.vchannels[0]!;
    const pchannel = pchannelOf(vchannel);
    const backendDir = path.join(dir, 'wal');
    const before = await oldestSegmentFile(backendDir, pchannel);
    expect(before).toBeDefined();
    for (let i = 0; i < 30; i++) await c.insert({ collection: 'docs', columns: rows(1 + i * 10, 10) }); // 300 rows, 6 segments
    await c.flush('docs');
    await eventually(async () => (await flushedSegments(server!, pchannel)).reduce((n, s) => n + s.rows, 0) === 300, 20_000, 'all rows flushed');
    const checkpointKey = pchannelKey(pchannel, 'checkpoint');
    await eventually(async () => (await server!.meta.get(checkpointKey)) !== undefined, 5_000, 'checkpoint persisted');
    // Truncation moves the oldest retained entry forward (whole files go).
    await eventually(async () => (await oldestSegmentFile(backendDir, pchannel)) !== before, 10_000, 'WAL truncated');
    await server.close();
    server = await StandaloneServer.start(config(dir, { 'wal.local.segmentBytes': '4096' }));
    // After the restart the collection still takes inserts (its meta came from the checkpointed state).
    await server.client.insert({ collection: 'docs', columns: rows(10_000, 5) });
    await server.client.flush('docs');
    await eventually(async () => (await flushedSegments(server!, pchannel)).reduce((n, s) => n + s.rows, 0) === 305, 20_000, 'new rows flushed after restart');
    const flushedKey = pchannelKey(pchannel, flushedKeyPath((await flushedSegments(server, pchannel))[0]!.segmentId));
    expect(await server.meta.get(flushedKey)).toBeDefined();
  });
});

async function oldestSegmentFile(walDir: string, pchannel: string): Promise<string | undefined> {
  const entries = await fs.readdir(walDir, { recursive: true, withFileTypes: true });
  const segs = entries.filter((e) => e.isFile() && e.name.endsWith('.seg') && (e.parentPath ?? e.path).includes(pchannel)).map((e) => e.name).sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
  return segs[0];
}

describe('autoId collections', () => {
  test('the server generates unique keys, returns them, and they reach the segment files', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-autoid-'));
    const server = await StandaloneServer.start(config(dir));
    try {
      const c = server.client;
      const schema = { fields: [{ name: 'id', type: 'int64' as const, primaryKey: true, autoId: true }, { name: 'vec', type: 'floatVector' as const, dim: 2 }] };
      const info = await c.createCollection({ name: 'auto', schema, shards: 2 });
      const ids: number[] = [];
      for (let i = 0; i < 12; i++) {
        const w = await c.insert({ collection: 'auto', columns: [{ name: 'vec', type: 'floatVector', dim: 2, data: new Float32Array(10).fill(i) }] });
        expect(w.rows).toBe(5);
        for (const a of w.appends) {
          const g = a.result.extra!.autoIds!;
          expect(g.count).toBe(a.rows);
          for (let k = 0; k < g.count; k++) ids.push(g.first + k);
        }
      }
      expect(ids).toHaveLength(60);
      expect(new Set(ids).size).toBe(60);
      for (const id of ids) expect(Number.isSafeInteger(id)).toBe(true);
      await c.flush('auto');
      const pchannels = [...new Set(info.vchannels.map((v) => pchannelOf(v)))];
      await eventually(async () => (await Promise.all(pchannels.map((p) => flushedSegments(server, p)))).flat().reduce((n, s) => n + s.rows, 0) === 60, 15_000, 'flushed');
      const keys: number[] = [];
      for (const s of (await Promise.all(pchannels.map((p) => flushedSegments(server, p)))).flat()) {
        const seg = await readSegment(server.objects, { collectionId: s.collectionId, partitionId: s.partitionId, segmentId: s.segmentId }, { root: server.config.objectStore.rootPath });
        keys.push(...(seg.inserts.primaryKeys.data as number[]));
      }
      expect(keys.sort((a, b) => a - b)).toEqual([...ids].sort((a, b) => a - b));
      // Giving the key of an autoId collection is refused.
      await expect(c.insert({ collection: 'auto', columns: [{ name: 'id', type: 'int64', data: [1] }, { name: 'vec', type: 'floatVector', dim: 2, data: new Float32Array(2) }] })).rejects.toMatchObject({
        code: ErrorCode.INVALID_ARGUMENT,
      });
    } finally {
      await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
