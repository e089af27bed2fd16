/**
 * Flush jobs on flush threads (storage/flush/flush-threads.ts): the file step runs on another thread
 * (its threadId, and the main event loop stays mostly idle while a large segment is flushed), writes
 * the same bytes as the in-thread worker, keeps StreamingError codes across the boundary, refuses a
 * fenced job with nothing committed, survives a thread that dies (the job fails retriably, the queue
 * retries it on a new thread), and close() waits for or fails running jobs and ends every thread.
 * The cluster path (BullMQ runner, Redis Streams WAL and S3 opened by the thread) runs on the test
 * Redis and an s3rver.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { threadId as mainThreadId } from 'node:worker_threads';
import { loadConfig } from '../../config/load';
import type { WalstreamConfig } from '../../config/schema';
import { systemClock } from '../../runtime/clock';
import { ChannelFencedError, ErrorCode, StreamingError, isRetriable, toStreamingError } from '../../runtime/errors';
import { encodeMessage } from '../../runtime/message/codec';
import type { CollectionSchema, Message } from '../../runtime/message/types';
import { forEachEntry, type WalBackend } from '../../storage/wal/backend';
import { LocalWalBackend } from '../../storage/wal/local/local-backend';
import { RedisWalBackend } from '../../storage/wal/redis/redis-backend';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { pchannelKey, type MetaStore } from '../../storage/meta/meta-store';
import type { ObjectStore } from '../../storage/objects/object-store';
import { openObjectStore } from '../../storage/objects/open';
import { ObjectNotFoundError, isObjectNotFound } from '../../storage/objects/errors';
import { readSegment } from '../../storage/segments/segment-reader';
import { flushedKeyPath, type FlushJob } from '../../storage/flush/flush-queue';
import { SegmentFlushWorker, type FlushedSegment } from '../../storage/flush/flush-worker';
import { FlushThreadPool } from '../../storage/flush/flush-threads';
import { createFlushWorker, flushThreadSettings } from '../../storage/flush/from-config';
import { localWalDir, redisWalKeyPrefix } from '../../storage/wal/open';
import { errorFromWire, errorToWire, transferablesOf, type FlushThreadSettings } from '../../storage/flush/flush-thread-protocol';
import { SegmentRows } from '../../storage/flush/flush-files';
import { InlineFlushQueue } from '../../storage/flush/inline-flush-queue';
import { BullMqFlushQueue, BullMqFlushRunner, flushJobId } from '../../storage/flush/bullmq-flush-queue';
import { eventually } from '../support/wal-fixture';
import { TEST_REDIS, TEST_REDIS_URL, connectTestRedis, scanKeys } from '../support/test-redis';
import { startS3rver } from '../support/s3rver';

const PCHANNEL = 'p';
const V = 'p_1v0';
const ROOT = 'seg';
const DIM = 112;
const SCHEMA: CollectionSchema = { fields: [{ name: 'id', type: 'int64', primaryKey: true }, { name: 'vec', type: 'floatVector', dim: DIM }] };

/** The WAL range of one segment: CreateSegment, `inserts` inserts of `rowsPerInsert` rows, Flush. */
function segmentMessages(segmentId: number, inserts: number, rowsPerInsert: number, tt0: bigint): Message[] {
  let tt = tt0;
  const base = { vchannel: V, lastConfirmedId: '', term: 1 };
  const out: Message[] = [{ ...base, type: 'CreateSegment', timetick: (tt += 1n), header: { collectionId: 1, partitionId: 10, segmentId, maxRows: 1e9, maxBytes: 2 ** 40 }, body: {} } as Message];
  for (let i = 0; i < inserts; i++) {
    const ids = Array.from({ length: rowsPerInsert }, (_, k) => segmentId * 1e7 + i * rowsPerInsert + k);
    const vec = new Float32Array(rowsPerInsert * DIM).fill(segmentId + i / 7);
    out.push({
      ...base,
      type: 'Insert',
      timetick: (tt += 1n),
      header: { collectionId: 1, partitionId: 10, rows: rowsPerInsert, bytes: 0, segmentId },
      body: { columns: [{ name: 'id', type: 'int64', data: ids }, { name: 'vec', type: 'floatVector', dim: DIM, data: vec }] },
    } as Message);
  }
  out.push({ ...base, type: 'Flush', timetick: (tt += 1n), header: { collectionId: 1, partitionId: 10, segmentId }, body: {} } as Message);
  return out;
}

/** Appends each segment's range (in this order) and returns the flush jobs at `term`. */
async function writeSegments(backend: WalBackend, term: number, segments: { id: number; inserts: number; rowsPerInsert: number }[]): Promise<FlushJob[]> {
  const log = await backend.open({ name: PCHANNEL, term: 1, accessMode: 'rw' });
  const jobs: FlushJob[] = [];
  let tt = 1n << 50n;
  try {
    for (const s of segments) {
      const messages = segmentMessages(s.id, s.inserts, s.rowsPerInsert, tt);
      tt += BigInt(messages.length + 1);
      const ids: string[] = [];
      for (let i = 0; i < messages.length; i += 50) ids.push(...(await log.append(messages.slice(i, i + 50).map((m) => encodeMessage(m)))));
      const last = messages[messages.length - 1]!;
      jobs.push({ pchannel: PCHANNEL, term, segmentId: s.id, vchannel: V, collectionId: 1, partitionId: 10, schema: SCHEMA, fromId: ids[0]!, toId: ids[ids.length - 1]!, toTimetick: String(last.timetick) });
    }
  } finally {
    await log.close();
  }
  return jobs;
}

async function committed(meta: MetaStore, segmentId: number): Promise<FlushedSegment | undefined> {
  const v = await meta.get(pchannelKey(PCHANNEL, flushedKeyPath(segmentId)));
  return v === undefined ? undefined : (JSON.parse(v.value) as FlushedSegment);
}

describe('flush threads, local WAL and local object store', () => {
  let dir: string;
  let config: WalstreamConfig;
  let settings: FlushThreadSettings;
  let backend: LocalWalBackend;
  let meta: EmbeddedMetaStore;
  let objects: ObjectStore;
  let term: number;
  const pools: FlushThreadPool[] = [];

  /** A pool on this test's settings, closed after the test. */
  const pool = (threads: number, extra: { closeTimeoutMs?: number } = {}): FlushThreadPool => {
    const p = new FlushThreadPool({ settings, threads, ...extra });
    pools.push(p);
    return p;
  };
  const worker = (threads?: FlushThreadPool): SegmentFlushWorker => new SegmentFlushWorker({ backend, objects, meta, root: ROOT, ...(threads ? { threads } : {}) });

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-flush-threads-'));
    config = loadConfig({ flags: { dataDir: dir, 'objectStore.rootPath': ROOT } });
    settings = flushThreadSettings(config)!;
    backend = new LocalWalBackend({ dir: localWalDir(config), fsync: 'interval' });
    meta = await EmbeddedMetaStore.open({ dir: path.join(dir, 'meta') });
    objects = await openObjectStore(config.objectStore, systemClock);
    await meta.bumpTerm(PCHANNEL, 0);
    term = await meta.pchannelTerm(PCHANNEL);
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
    await objects.close();
    await meta.close();
    await backend.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('the file step runs on a flush thread and writes the very bytes the in-thread worker writes', async () => {
    const [job] = await writeSegments(backend, term, [{ id: 1, inserts: 40, rowsPerInsert: 50 }]);
    const threads = pool(2);
    expect(threads.live).toHaveLength(0); // started lazily

    const files = await threads.run(job!);
    expect(files.threadId).not.toBe(mainThreadId);
    expect(threads.live.map((t) => t.threadId)).toEqual([files.threadId]);
    expect(files.rows).toBe(2000);
    const onThread = new Map<string, Buffer>();
    for await (const o of objects.list(`${ROOT}/`)) onThread.set(o.key, Buffer.from(await objects.get(o.key)));
    expect(onThread.size).toBe(3);

    // The same job through the worker: on the thread (reused), then committed here at the term.
    await worker(threads).process(job!);
    expect(threads.live.map((t) => t.threadId)).toEqual([files.threadId]);
    const record = await committed(meta, 1);
    expect(record).toMatchObject({ segmentId: 1, rows: 2000, deletes: 0, manifest: files.manifest, term });

    // In-thread (flush.threads = 0) into an empty store: byte for byte the same files.
    await objects.deletePrefix(`${ROOT}/`);
    await worker().process(job!);
    for (const [key, bytes] of onThread) expect({ key, same: Buffer.from(await objects.get(key)).equals(bytes) }).toEqual({ key, same: true });
    const segment = await readSegment(objects, { collectionId: 1, partitionId: 10, segmentId: 1 }, { root: ROOT });
    expect(segment.inserts.rows).toBe(2000);
  });

  test('a segment encoded here (as the write buffer does) is written on a thread: its batch buffers move there, the files are the same', async () => {
    const [job] = await writeSegments(backend, term, [{ id: 1, inserts: 40, rowsPerInsert: 50 }]);
    const rows = new SegmentRows(job!, { root: ROOT });
    const log = await backend.open({ name: PCHANNEL, term: 0, accessMode: 'ro' });
    await forEachEntry(log, { policy: { type: 'startFrom', id: job!.fromId } }, (entry) => rows.take(entry));
    await log.close();
    expect(rows.complete).toBe(true);
    const data = await rows.finishData();
    const moved = transferablesOf(data);
    expect(moved.length).toBeGreaterThanOrEqual(1); // the vector batch: 4096 rows × 112 floats
    expect(moved.every((b) => b.byteLength >= 1024 * 1024)).toBe(true);
    const sizes = moved.map((b) => b.byteLength);

    const threads = pool(1);
    const files = await threads.run(job!, data);
    expect(files.threadId).not.toBe(mainThreadId);
    expect(files.rows).toBe(2000);
    expect(moved.map((b) => b.byteLength)).toEqual(moved.map(() => 0)); // detached here: moved, not copied
    expect(files.buffers?.map((b) => b.byteLength)).toEqual(sizes); // and moved back once written, to be reused
    const fromBuffer = new Map<string, Buffer>();
    for await (const o of objects.list(`${ROOT}/`)) fromBuffer.set(o.key, Buffer.from(await objects.get(o.key)));
    expect(fromBuffer.size).toBe(3);

    // The WAL range read back on this thread, into an empty store: byte for byte the same files.
    await objects.deletePrefix(`${ROOT}/`);
    await worker().process(job!);
    for (const [key, bytes] of fromBuffer) expect({ key, same: Buffer.from(await objects.get(key)).equals(bytes) }).toEqual({ key, same: true });

    // Such a job never opens the thread's WAL: it is written even while that WAL cannot be reached.
    await objects.deletePrefix(`${ROOT}/`);
    const again = new SegmentRows(job!, { root: ROOT });
    const log2 = await backend.open({ name: PCHANNEL, term: 0, accessMode: 'ro' });
    await forEachEntry(log2, { policy: { type: 'startFrom', id: job!.fromId } }, (entry) => again.take(entry));
    await log2.close();
    const noWal = new FlushThreadPool({ settings: { ...settings, wal: { kind: 'redis', url: 'redis://127.0.0.1:1', keyPrefix: 'unreachable' } }, threads: 1 });
    pools.push(noWal);
    expect((await noWal.run(job!, await again.finishData())).rows).toBe(2000);
    for (const [key, bytes] of fromBuffer) expect({ key, same: Buffer.from(await objects.get(key)).equals(bytes) }).toEqual({ key, same: true });
  });

  test('the main event loop stays free while a large segment is flushed on a thread', async () => {
    const [a, b] = await writeSegments(backend, term, [
      { id: 1, inserts: 120, rowsPerInsert: 1000 }, // ~54 MB of vectors each
      { id: 2, inserts: 120, rowsPerInsert: 1000 },
    ]);
    const threads = pool(1);
    await threads.run({ ...a!, segmentId: 99 }); // starts the thread (an empty segment 99) outside the measurement

    /** Runs `flush` while a 10 ms timer ticks; the event loop's utilization and the longest gap between ticks. */
    const measure = async (flush: () => Promise<void>): Promise<{ utilization: number; maxGapMs: number; ticks: number }> => {
      let last = performance.now();
      let maxGapMs = 0;
      let ticks = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        maxGapMs = Math.max(maxGapMs, now - last);
        last = now;
        ticks++;
      }, 10);
      const elu = performance.eventLoopUtilization();
      try {
        await flush();
      } finally {
        clearInterval(timer);
      }
      return { utilization: performance.eventLoopUtilization(elu).utilization, maxGapMs, ticks };
    };
    const threaded = await measure(() => worker(threads).process(a!));
    const inThread = await measure(() => worker().process(b!));
    expect((await committed(meta, 1))?.rows).toBe(120_000);
    expect((await committed(meta, 2))?.rows).toBe(120_000);
    // On the thread the main loop only posts the job and commits; here it does everything.
    expect(threaded.utilization).toBeLessThan(0.5);
    expect(threaded.utilization).toBeLessThan(inThread.utilization);
    expect(threaded.ticks).toBeGreaterThan(5);
    expect(threaded.maxGapMs).toBeLessThan(250);
  });

  test('errors keep their StreamingError code, retriable flag and details across the thread boundary', async () => {
    const [job] = await writeSegments(backend, term, [{ id: 1, inserts: 2, rowsPerInsert: 10 }]);
    const threads = pool(1);
    // A bad schema: INVALID_ARGUMENT from the encoder, inside the thread.
    const bad = threads.run({ ...job!, schema: { fields: [{ name: 'id', type: 'int64' }] } as unknown as CollectionSchema });
    await expect(bad).rejects.toBeInstanceOf(StreamingError);
    await expect(bad).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, retriable: false });
    // The wire form of errors: class name, code, retriable flag and details survive a structured clone.
    const wire = errorToWire(new ChannelFencedError('p', 1, 2));
    expect(errorFromWire(structuredClone(wire))).toMatchObject({ name: 'ChannelFencedError', code: ErrorCode.CHANNEL_FENCED, retriable: false, details: { pchannel: 'p', term: 1, currentTerm: 2 } });
    expect(isObjectNotFound(errorFromWire(structuredClone(errorToWire(new ObjectNotFoundError('a/b')))))).toBe(true);
    const plain = errorFromWire(structuredClone(errorToWire(new TypeError('boom'))));
    expect(plain).not.toBeInstanceOf(StreamingError);
    expect(toStreamingError(plain)).toMatchObject({ code: ErrorCode.UNKNOWN, retriable: false, message: 'boom' });
    // The thread is still good for the next job.
    await expect(threads.run(job!)).resolves.toMatchObject({ rows: 20 });
  });

  test('a fenced job is refused before any work, or at the commit when the term moves meanwhile; nothing is committed', async () => {
    const [job] = await writeSegments(backend, term, [{ id: 1, inserts: 60, rowsPerInsert: 1000 }]);
    const threads = pool(1);
    const w = worker(threads);
    await expect(w.process({ ...job!, term: term - 1 })).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    expect(threads.live).toHaveLength(0); // refused on the main thread: no thread was even started

    const racing = w.process(job!);
    await eventually(() => threads.live.some((t) => t.busy), 10_000, 'job on its thread');
    await meta.bumpTerm(PCHANNEL, term); // the pchannel moves while the thread writes the files
    await expect(racing).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    expect(await committed(meta, 1)).toBeUndefined();
  });

  test('a thread that dies fails its job retriably, is replaced, and the queue retries the job', async () => {
    const [a, b] = await writeSegments(backend, term, [
      { id: 1, inserts: 60, rowsPerInsert: 1000 },
      { id: 2, inserts: 60, rowsPerInsert: 1000 },
    ]);
    const threads = pool(1);
    const w = worker(threads);

    // Directly: the job fails with a retriable INNER error, nothing is committed.
    const dying = w.process(a!);
    await eventually(() => threads.live.some((t) => t.busy), 10_000, 'job on its thread');
    const first = threads.live[0]!;
    await first.worker.terminate();
    const err = await dying.then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.INNER, retriable: true, details: { threadId: first.threadId, segmentId: 1 } });
    expect(isRetriable(err)).toBe(true);
    expect(await committed(meta, 1)).toBeUndefined();
    expect(threads.live).toHaveLength(0);

    // Through the queue: the attempt that loses its thread is retried on a new one and commits.
    const queue = new InlineFlushQueue(w, systemClock, { backoffMs: 10 });
    try {
      await queue.submit(b!);
      await eventually(() => threads.live.some((t) => t.busy), 10_000, 'job on its thread');
      const second = threads.live[0]!;
      await second.worker.terminate();
      await queue.drained();
      expect({ completed: queue.completed, failed: queue.failed }).toEqual({ completed: 1, failed: 0 });
      expect((await committed(meta, 2))?.rows).toBe(60_000);
      const now = threads.live.map((t) => t.threadId);
      expect(now).toHaveLength(1);
      expect(now).not.toContain(first.threadId);
      expect(now).not.toContain(second.threadId);
    } finally {
      await queue.close();
    }
    // And the job whose thread died first succeeds now.
    await w.process(a!);
    expect((await committed(meta, 1))?.rows).toBe(60_000);
  });

  test('close() lets a running job finish, then ends every thread; later jobs are refused', async () => {
    const jobs = await writeSegments(backend, term, [
      { id: 1, inserts: 40, rowsPerInsert: 1000 },
      { id: 2, inserts: 2, rowsPerInsert: 10 },
      { id: 3, inserts: 2, rowsPerInsert: 10 },
    ]);
    const threads = pool(2);
    const w = worker(threads);
    await Promise.all([w.process(jobs[1]!), w.process(jobs[2]!)]);
    expect(threads.live).toHaveLength(2);
    const running = w.process(jobs[0]!);
    await eventually(() => threads.live.some((t) => t.busy), 10_000, 'job on its thread');
    const workers = threads.live.map((t) => t.worker);
    const exits = workers.map((t) => new Promise<number>((resolve) => t.once('exit', resolve)));
    await w.close(); // the worker's close ends its pool
    await expect(running).resolves.toBeUndefined();
    expect((await committed(meta, 1))?.rows).toBe(40_000);
    expect(await Promise.all(exits)).toEqual([0, 0]); // each closed its backend and store and exited
    expect(threads.live).toHaveLength(0);
    await expect(w.process(jobs[1]!)).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN, retriable: true });
  });

  test('close() past its timeout ends a thread under a running job, which fails with ON_SHUTDOWN', async () => {
    const [job] = await writeSegments(backend, term, [{ id: 1, inserts: 60, rowsPerInsert: 1000 }]);
    const threads = pool(1, { closeTimeoutMs: 0 });
    const running = worker(threads).process(job!);
    await eventually(() => threads.live.some((t) => t.busy), 10_000, 'job on its thread');
    await threads.close();
    await expect(running).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN, retriable: true });
    expect(threads.live).toHaveLength(0);
    expect(await committed(meta, 1)).toBeUndefined();
  });

  test('createFlushWorker: flush.threads threads by default, none for 0, for the memory WAL, or when told why', async () => {
    const cfg = (flags: Record<string, string>): WalstreamConfig => loadConfig({ flags: { dataDir: dir, ...flags } });
    const deps = { backend, objects, meta };
    const made: SegmentFlushWorker[] = [];
    const make = (c: WalstreamConfig, inThreadBecause?: string): SegmentFlushWorker => {
      const w = createFlushWorker(c, { ...deps, ...(inThreadBecause ? { inThreadBecause } : {}) });
      made.push(w);
      return w;
    };
    try {
      expect(make(cfg({})).threads?.size).toBe(2);
      expect(make(cfg({ 'flush.threads': '3' })).threads?.size).toBe(3);
      expect(make(cfg({ 'flush.threads': '0' })).threads).toBeUndefined();
      expect(make(cfg({ 'wal.backend': 'memory' })).threads).toBeUndefined();
      expect(make(cfg({}), 'wrapped store').threads).toBeUndefined();
      expect(flushThreadSettings(cfg({ mode: 'node', 'wal.backend': 'redis', 'redis.keyPrefix': 'x' }))?.wal).toEqual({ kind: 'redis', url: 'redis://127.0.0.1:6379', keyPrefix: 'x:wal:' });
    } finally {
      await Promise.all(made.map((w) => w.close()));
    }
  });
});

describe('FlushThreadPool scheduling (a scripted thread whose jobs move on when the test says)', () => {
  const script = path.join(__dirname, '..', 'support', 'scripted-flush-thread.js');
  const settings: FlushThreadSettings = { wal: { kind: 'local', dir: '/nonexistent' }, objects: loadConfig({ flags: {} }).objectStore, root: ROOT };
  const job = (segmentId: number): FlushJob => ({ pchannel: PCHANNEL, term: 1, segmentId, vchannel: V, collectionId: 1, partitionId: 10, schema: SCHEMA, fromId: '', toId: '', toTimetick: '0' });
  const step = (pool: FlushThreadPool, threadId: number, segmentId: number, what: 'writing' | 'done' | 'fail'): void => {
    pool.live.find((t) => t.threadId === threadId)!.worker.postMessage({ type: 'step', segmentId, step: what });
  };
  const jobsOn = (pool: FlushThreadPool): number[] => pool.live.map((t) => t.jobs);
  let pool: FlushThreadPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('a thread takes its next job once the last one is writing its files, two at most, in order', async () => {
    pool = new FlushThreadPool({ settings, threads: 1, script });
    expect(pool.jobsAtOnce).toBe(2);
    const results: number[] = [];
    const runs = [1, 2, 3].map((id) =>
      pool!.run(job(id)).then((f) => {
        results.push(id);
        return f;
      }),
    );
    await eventually(() => jobsOn(pool!)[0] === 1, 10_000, 'first job on the thread');
    const t = pool.live[0]!.threadId;
    expect(jobsOn(pool)).toEqual([1]); // segment 1 encodes: 2 and 3 wait

    step(pool, t, 1, 'writing');
    await eventually(() => jobsOn(pool!)[0] === 2, 10_000, 'second job beside the writing one');
    expect(jobsOn(pool)).toEqual([2]); // 2 encodes beside 1 writing; 3 waits (one encoding at a time)

    step(pool, t, 1, 'done');
    const first = await runs[0]!;
    expect(first.threadId).toBe(t);
    expect(results).toEqual([1]);
    expect(jobsOn(pool)).toEqual([1]); // 2 still encodes: 3 still waits

    step(pool, t, 2, 'writing');
    await eventually(() => jobsOn(pool!)[0] === 2, 10_000, 'third job');
    step(pool, t, 3, 'done'); // finishes before 2: each job is answered on its own
    await runs[2];
    step(pool, t, 2, 'fail');
    await expect(runs[1]).rejects.toThrow('segment 2 failed as told');
    expect(results).toEqual([1, 3]);
    expect(jobsOn(pool)).toEqual([0]);
  });

  it('puts a job on an idle or a new thread before one that is writing', async () => {
    pool = new FlushThreadPool({ settings, threads: 2, script });
    const one = pool.run(job(1));
    await eventually(() => jobsOn(pool!).length === 1 && jobsOn(pool!)[0] === 1, 10_000, 'first thread');
    const first = pool.live[0]!.threadId;
    step(pool, first, 1, 'writing');
    const two = pool.run(job(2));
    await eventually(() => pool!.live.length === 2 && pool!.live.every((t) => t.jobs === 1), 10_000, 'a second thread for the second job');
    const second = pool.live.find((t) => t.threadId !== first)!.threadId;
    const three = pool.run(job(3)); // no idle thread, none to start: beside segment 1, which writes
    await eventually(() => pool!.live.find((t) => t.threadId === first)!.jobs === 2, 10_000, 'third job beside the writing one');
    step(pool, first, 1, 'done');
    step(pool, second, 2, 'done');
    step(pool, first, 3, 'done');
    expect((await Promise.all([one, two, three])).map((f) => f.threadId)).toEqual([first, second, first]);
  });

  it('a thread that dies fails every job it held, retriably, and the next job gets a new thread', async () => {
    pool = new FlushThreadPool({ settings, threads: 1, script });
    const runs = [1, 2].map((id) => pool!.run(job(id)).then(() => undefined, (e: unknown) => e));
    await eventually(() => jobsOn(pool!)[0] === 1, 10_000, 'first job');
    const dead = pool.live[0]!;
    step(pool, dead.threadId, 1, 'writing');
    await eventually(() => jobsOn(pool!)[0] === 2, 10_000, 'both jobs on the thread');
    await dead.worker.terminate();
    for (const e of await Promise.all(runs)) {
      expect(e).toBeInstanceOf(StreamingError);
      expect(isRetriable(e as StreamingError)).toBe(true);
      expect((e as Error).message).toContain(`flush thread ${dead.threadId} died`);
    }
    const again = pool.run(job(1));
    await eventually(() => pool!.live.length === 1 && pool!.live[0]!.threadId !== dead.threadId && pool!.live[0]!.jobs === 1, 10_000, 'a new thread');
    step(pool, pool.live[0]!.threadId, 1, 'done');
    expect((await again).threadId).not.toBe(dead.threadId);
  });
});

describe('flush threads in cluster mode: BullMQ runner, Redis Streams WAL and S3 (s3rver) from the thread', () => {
  test('a job queued on BullMQ is flushed on a thread from the Redis WAL into S3 and committed at its term', async () => {
    const prefix = `walstream-test-${randomUUID().slice(0, 8)}`;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-flush-threads-redis-'));
    const redis = await connectTestRedis('flush thread tests');
    const s3 = await startS3rver({ conditionalWrites: true });
    const endpoint = new URL(s3.endpoint);
    const config = loadConfig({
      flags: {
        mode: 'node',
        dataDir: dir,
        'wal.backend': 'redis',
        'redis.url': TEST_REDIS_URL,
        'redis.keyPrefix': prefix,
        'objectStore.kind': 's3',
        'objectStore.rootPath': ROOT,
        'objectStore.s3.endPoint': endpoint.hostname,
        'objectStore.s3.port': endpoint.port,
        'objectStore.s3.accessKey': s3.accessKey,
        'objectStore.s3.secretKey': s3.secretKey,
        'objectStore.s3.region': s3.region,
        'objectStore.s3.bucket': 'flush-threads',
      },
    });
    const backend = await RedisWalBackend.connect({ redis: TEST_REDIS_URL, keyPrefix: redisWalKeyPrefix(config) });
    const meta = await EmbeddedMetaStore.open({ dir: path.join(dir, 'meta') });
    const objects = await openObjectStore(config.objectStore, systemClock);
    const connection = { ...TEST_REDIS, maxRetriesPerRequest: null };
    const worker = createFlushWorker(config, { backend, objects, meta });
    const queue = new BullMqFlushQueue({ connection, prefix, backoffMs: 10 });
    const runner = new BullMqFlushRunner(worker, { connection, prefix });
    try {
      expect(worker.threads?.size).toBe(2);
      await meta.bumpTerm(PCHANNEL, 0);
      const term = await meta.pchannelTerm(PCHANNEL);
      const [job] = await writeSegments(backend, term, [{ id: 7, inserts: 20, rowsPerInsert: 100 }]);
      await queue.submit(job!);
      await eventually(async () => (await queue.bullQueue.getJobState(flushJobId(job!))) === 'completed', 30_000, 'job completed');
      expect(await committed(meta, 7)).toMatchObject({ rows: 2000, term });
      expect(worker.threads!.live.length).toBe(1);
      const segment = await readSegment(objects, { collectionId: 1, partitionId: 10, segmentId: 7 }, { root: ROOT });
      expect(segment.inserts.rows).toBe(2000);
    } finally {
      await runner.close();
      await worker.close();
      await queue.bullQueue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await backend.close();
      await objects.close();
      await meta.close();
      const keys = await scanKeys(redis, `${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
      await s3.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
