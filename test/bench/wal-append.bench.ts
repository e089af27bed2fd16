/**
 * WAL core benchmark: append throughput and latency of one pchannel on the local backend with
 * group commit (512-byte inserts; 1 and 64 concurrent appenders), beside a bare loop writing the
 * same bytes with the same fsync policy, measured in the same run; and tailing readers from the
 * write-ahead buffer beside a bare loop over the same messages.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { encodeMessage } from '../../runtime/message/codec';
import type { CollectionSchema, InsertMessage, LogMessage, NewMessage } from '../../runtime/message/types';
import { LocalWalBackend } from '../../storage/wal/local/local-backend';
import { walFixture } from '../support/wal-fixture';
import { WriteBuffer } from '../../storage/flush/write-buffer';
import { SegmentFlushWorker } from '../../storage/flush/flush-worker';
import { FlushThreadPool } from '../../storage/flush/flush-threads';
import { flushThreadSettings } from '../../storage/flush/from-config';
import { InlineFlushQueue } from '../../storage/flush/inline-flush-queue';
import { LocalObjectStore } from '../../storage/objects/local/local-object-store';
import { localWalDir } from '../../storage/wal/open';
import { DEFAULT_SEGMENT_LIMITS } from '../../actors/wal/segments';
import { loadConfig } from '../../config/load';
import { systemClock } from '../../runtime/clock';
import { fmt, percentile, printTable, progress, type Row } from './table';

const VCH = 'bench_1v0';
const DIM = 112;
const SCHEMA: CollectionSchema = {
  fields: [
    { name: 'id', type: 'int64', primaryKey: true },
    { name: 'vec', type: 'floatVector', dim: DIM },
  ],
};

let pk = 0;
function insert(): NewMessage<InsertMessage> {
  const id = ++pk;
  const vec = new Float32Array(DIM);
  vec[0] = id;
  return {
    type: 'Insert',
    vchannel: VCH,
    header: { collectionId: 1, partitionId: 10, rows: 1, bytes: 0, segmentId: 0 },
    body: { columns: [{ name: 'id', type: 'int64', data: [id] }, { name: 'vec', type: 'floatVector', dim: DIM, data: vec }] },
  };
}

function encodedInsertBytes(): number {
  return encodeMessage({ ...insert(), timetick: 1n << 60n, lastConfirmedId: '0000000000000001', term: 1 } as InsertMessage).length;
}

type Fsync = 'always' | 'interval';

async function bareLoop(dir: string, fsync: Fsync, recordBytes: number, batch: number, durationMs: number): Promise<{ rate: number; p50: number; p99: number }> {
  const file = path.join(dir, `bare-${fsync}-${batch}.log`);
  const fh = await fs.open(file, 'w');
  const buf = Buffer.alloc((recordBytes + 8) * batch, 7);
  const lat: number[] = [];
  let n = 0;
  let lastSync = performance.now();
  const t0 = performance.now();
  while (performance.now() - t0 < durationMs) {
    const s = performance.now();
    await fh.write(buf);
    if (fsync === 'always') await fh.datasync();
    else if (performance.now() - lastSync > 50) {
      await fh.datasync();
      lastSync = performance.now();
    }
    lat.push(performance.now() - s);
    n += batch;
  }
  const dt = (performance.now() - t0) / 1000;
  await fh.close();
  lat.sort((a, b) => a - b);
  return { rate: n / dt, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

/** What runs beside the appends: nothing, or flushes of the segments they fill (sealed at FLUSHED_SEGMENT_BYTES), from the WAL range or from the write buffer. */
type Flushing = 'none' | 'WAL range' | 'write buffer';
/** Segments of the runs that flush are sealed at this size, so that several are flushed within a run. */
const FLUSHED_SEGMENT_BYTES = 16 * 1024 * 1024;

async function walRun(dir: string, fsync: Fsync, appenders: number, durationMs: number, flushing: Flushing): Promise<{ rate: number; p50: number; p99: number; avgBatch: number; flushed: number }> {
  const runDir = path.join(dir, `wal-${fsync}-${appenders}-${flushing.replace(' ', '-')}`);
  // A node's flush parts, as createFlushWorker builds them (flush threads on the node's WAL directory, the write buffer of its default size).
  const config = loadConfig({ flags: { dataDir: runDir, 'objectStore.local.dir': path.join(runDir, 'objects') } });
  const backend = new LocalWalBackend({ dir: localWalDir(config), fsync, fsyncIntervalMs: 50 });
  const writeBuffer = flushing === 'write buffer' ? new WriteBuffer({ maxBytes: config.flush.writeBufferBytes, root: config.objectStore.rootPath }) : undefined;
  const fx = await walFixture(backend, systemClock, {
    ...(flushing === 'none' ? {} : { segmentLimits: { ...DEFAULT_SEGMENT_LIMITS, maxBytes: FLUSHED_SEGMENT_BYTES } }),
    ...(writeBuffer ? { writeBuffer } : {}),
  });
  let worker: SegmentFlushWorker | undefined;
  let queue: InlineFlushQueue | undefined;
  let objects: LocalObjectStore | undefined;
  if (flushing !== 'none') {
    objects = await LocalObjectStore.open({ dir: config.objectStore.local.dir });
    const threads = new FlushThreadPool({ settings: flushThreadSettings(config)!, threads: config.flush.threads });
    worker = new SegmentFlushWorker({ backend, objects, meta: fx.meta, root: config.objectStore.rootPath, threads, ...(writeBuffer ? { writeBuffer } : {}) });
    queue = new InlineFlushQueue(worker, systemClock);
    fx.flushQueue.forwardTo = queue;
  }
  const wal = await fx.open('bench', 1);
  await wal.ready();
  await wal.append(createBenchCollection());
  const lat: number[] = [];
  let n = 0;
  const stats0 = { ...backend.stats };
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  await Promise.all(
    Array.from({ length: appenders }, async () => {
      while (performance.now() < deadline) {
        const m = insert();
        const s = performance.now();
        await wal.append(m);
        lat.push(performance.now() - s);
        n++;
      }
    }),
  );
  const dt = (performance.now() - t0) / 1000;
  // Group size as the disk saw it, the WAL's own TimeTicks included: records per fdatasync under
  // `always` (groups written behind a sync in flight share the next one), per write(2) under `interval`.
  const groups = fsync === 'always' ? backend.stats.syncs - stats0.syncs : backend.stats.writes - stats0.writes;
  const records = backend.stats.records - stats0.records;
  const sources = worker?.sources;
  await queue?.close();
  await worker?.close();
  await objects?.close();
  await fx.close();
  if (flushing === 'write buffer' && sources !== undefined && sources.wal > 0) throw new Error(`${sources.wal} flushes read the WAL although the write buffer was on`);
  lat.sort((a, b) => a - b);
  return { rate: n / dt, p50: percentile(lat, 50), p99: percentile(lat, 99), avgBatch: records / Math.max(1, groups), flushed: sources ? sources.wal + sources.writeBuffer : 0 };
}

function createBenchCollection(): NewMessage {
  return { type: 'CreateCollection', vchannel: VCH, header: { collectionId: 1, partitionIds: [10] }, body: { collectionName: 'bench', schema: SCHEMA, partitions: [{ id: 10, name: '_default' }] } };
}

async function tailRun(dir: string, messages: number, readers: number): Promise<{ rate: number; bare: number }> {
  const backend = new LocalWalBackend({ dir: path.join(dir, `tail-${readers}`), fsync: 'interval', fsyncIntervalMs: 50 });
  const fx = await walFixture(backend);
  const wal = await fx.open('tail', 1, { writeAheadBuffer: { capacityBytes: 1 << 30, keepaliveMs: 600_000 }, timetickIntervalMs: 60_000 });
  const first = await wal.ready();
  await wal.append(createBenchCollection());
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < messages; i++) {
    inflight.push(wal.append(insert()));
    if (inflight.length >= 256) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  // Everything is in the buffer: readers starting at the term's first message tail it.
  const t0 = performance.now();
  const counts = await Promise.all(
    Array.from({ length: readers }, async () => {
      const sub = await wal.subscribe({ policy: { type: 'startFrom', id: first.lastPersistedId }, filters: { types: ['Insert'] }, credits: 4096 });
      let got = 0;
      for await (const m of sub) {
        if (m.type === 'Insert' && ++got === messages) break;
      }
      return got;
    }),
  );
  const dt = (performance.now() - t0) / 1000;
  const rate = counts.reduce((a, b) => a + b, 0) / dt;
  // Bare: the same number of messages handed over one at a time through an async iterator over
  // an array: the floor of delivering a stream message by message in this runtime.
  const arr: LogMessage[] = [];
  for (let i = 0; i < messages; i++) arr.push({ type: 'TimeTick', vchannel: '', timetick: BigInt(i), lastConfirmedId: '', term: 1, header: {}, body: {}, id: '', size: 0 });
  async function* stream(): AsyncGenerator<LogMessage> {
    for (const m of arr) yield m;
  }
  const b0 = performance.now();
  const sinks = await Promise.all(
    Array.from({ length: readers }, async () => {
      let n = 0;
      for await (const m of stream()) if (m.timetick >= 0n) n++;
      return n;
    }),
  );
  const bare = sinks.reduce((a, b) => a + b, 0) / ((performance.now() - b0) / 1000);
  await fx.close();
  return { rate, bare };
}

export async function runWalAppendBench(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-bench-'));
  const duration = Number(process.env.BENCH_DURATION_MS ?? 3000);
  try {
    const recordBytes = encodedInsertBytes();
    const rows: Row[] = [];
    // Each case with nothing beside the appends and, with 64 appenders, while the segments they fill
    // are flushed (from the WAL range, or from the write buffer: every insert is then also encoded
    // into its growing segment on the WAL's thread as it is persisted).
    const cases = (['always', 'interval'] as const).flatMap((fsync) => [
      { fsync, appenders: 1, flushing: 'none' as Flushing },
      { fsync, appenders: 64, flushing: 'none' as Flushing },
      { fsync, appenders: 64, flushing: 'WAL range' as Flushing },
      { fsync, appenders: 64, flushing: 'write buffer' as Flushing },
    ]);
    for (const { fsync, appenders, flushing } of cases) {
      progress(`wal append: fsync=${fsync}, ${appenders} appender(s), flushing: ${flushing}, ${duration} ms`);
      const w = await walRun(dir, fsync, appenders, duration, flushing);
      const batch = Math.max(1, Math.round(w.avgBatch));
      progress(`bare loop: fsync=${fsync}, batches of ${batch}`);
      const b = await bareLoop(dir, fsync, recordBytes, batch, duration);
      // For reference: the bare loop with every appender in one group (the largest group possible).
      const whole = appenders > 1 && appenders !== batch ? await bareLoop(dir, fsync, recordBytes, appenders, duration) : b;
      rows.push({
        fsync,
        appenders,
        'flushing meanwhile': flushing === 'none' ? '' : `${w.flushed} segments from the ${flushing}`,
        'msg bytes': recordBytes,
        'wal msg/s': fmt(w.rate),
        'wal p50 ms': fmt(w.p50, 3),
        'wal p99 ms': fmt(w.p99, 3),
        'avg group': fmt(w.avgBatch, 1),
        'bare msg/s (same groups)': fmt(b.rate),
        'bare p50 ms': fmt(b.p50, 3),
        'wal / bare': fmt(w.rate / b.rate, 2),
        [`bare msg/s (groups of all appenders)`]: fmt(whole.rate),
        'wal / that': fmt(w.rate / whole.rate, 2),
      });
    }
    printTable(`WAL append, one pchannel, local backend (bare = write()+fsync loop of the same bytes and group sizes); flushing meanwhile: segments sealed at ${FLUSHED_SEGMENT_BYTES / 2 ** 20} MiB flushed on the default flush threads into a local directory, from the WAL range or from the write buffer`, rows);
    const tailRows: Row[] = [];
    for (const readers of [1, 2]) {
      progress(`tailing readers: ${readers}`);
      const t = await tailRun(dir, 200_000, readers);
      tailRows.push({ readers, messages: 200_000, 'delivered msg/s (all readers)': fmt(t.rate), 'bare async-iterator msg/s': fmt(t.bare), 'ratio': fmt(t.rate / t.bare, 3) });
    }
    printTable('Tailing readers from the write-ahead buffer', tailRows);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
