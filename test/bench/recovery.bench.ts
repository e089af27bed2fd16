/**
 * Recovery storage benchmark, on a log of `BENCH_REPLAY_MESSAGES` (default 1M) single-row inserts
 * written as the WAL writes them: one collection, its rows in segments 1..k sealed at the default
 * limits (DEFAULT_SEGMENT_LIMITS: 128 MiB of insert bytes or 1M rows, the same rule as
 * SegmentManager.assign), each segment CreateSegment … its inserts … Flush (the last one, not full,
 * flushed as the idle seal policy would). Beside it, on another pchannel, a log of the same rows in
 * inserts of `BENCH_BATCH_ROWS` (default 100) rows each: the flush of its segments shows what a
 * flush costs per byte when the cost per message is spread over many rows.
 * - Replay: the rate at which a new owner recovers the whole tail (no checkpoint) on the local
 *   backend, beside a bare read of the same entries (no decoding) in the same run.
 * - Flush: the sealed segments of each log go through the real flush path of standalone, an
 *   InlineFlushQueue (at the worker's default concurrency: two jobs per flush thread, so that a
 *   thread encodes one segment while another's files are written; 2 on the main thread) running
 *   the SegmentFlushWorker that createFlushWorker builds from the configuration (read the WAL
 *   range, encode Arrow, checksums, put the files and the manifest on a flush thread, commit at the
 *   term on the main thread), once with the default flush.threads (2) and once with flush.threads
 *   = 0 (everything on the main thread). Each worker flushes the segments first as a node's first
 *   flushes (its threads start with the first jobs, JIT and batch buffers cold), then
 *   `BENCH_FLUSH_PASSES` (default 3) more times on the same worker, each at a new owner term, as a
 *   node that has been flushing (the table gives the medians: this machine's speed varies from
 *   one second to the next); each pass is timed from the first submit until the queue is drained
 *   with every segment committed at its term. After each pass, raw puts of the very objects it
 *   wrote (same keys under `raw/`, same bytes, same store), as many at a time as the queue runs
 *   jobs, three times (the median counts). For two stores in the same run: the LocalObjectStore
 *   (fsync on, as in standalone) and the
 *   S3ObjectStore (the product's main store) against s3rver (test/support/s3rver.ts, with
 *   If-None-Match as MinIO has it), started in a child process so that, like a MinIO, the server's
 *   CPU is not the flushing process's.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { systemClock } from '../../runtime/clock';
import { createLogger } from '../../runtime/logger';
import { decodeLazily, encodeMessage } from '../../runtime/message/codec';
import type { CollectionSchema, Column, LogMessage, Message } from '../../runtime/message/types';
import { sequenceId } from '../../runtime/message/message-id';
import { estimateInsertBytes } from '../../runtime/message/validate';
import { DEFAULT_SEGMENT_LIMITS } from '../../actors/wal/segments';
import { AUTO_ID_ROWS_PER_SEGMENT } from '../../actors/wal/interceptors/shard';
import { LocalWalBackend } from '../../storage/wal/local/local-backend';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { pchannelKey, type MetaStore } from '../../storage/meta/meta-store';
import type { ObjectStore } from '../../storage/objects/object-store';
import { LocalObjectStore } from '../../storage/objects/local/local-object-store';
import { S3ObjectStore } from '../../storage/objects/s3/s3-object-store';
import type { FlushedSegment } from '../../storage/flush/flush-worker';
import { InlineFlushQueue, defaultConcurrency } from '../../storage/flush/inline-flush-queue';
import { createFlushWorker } from '../../storage/flush/from-config';
import { loadConfig } from '../../config/load';
import type { WalstreamConfig } from '../../config/schema';
import { flushedKeyPath, type FlushJob } from '../../storage/flush/flush-queue';
import type { ChannelWriteBuffer } from '../../storage/flush/write-buffer';
import { forEachEntry } from '../../storage/wal/backend';
import { recover } from '../../actors/recovery-storage/replay';
import { RecoveryState, type SegmentRecord } from '../../actors/recovery-storage/state';
import type { Logger } from '../../runtime/logger';
import type { S3rverFixture } from '../support/s3rver';
import { fmt, printTable, progress, type Row } from './table';

const DIM = 112;
const SCHEMA: CollectionSchema = { fields: [{ name: 'id', type: 'int64', primaryKey: true }, { name: 'vec', type: 'floatVector', dim: DIM }] };
const V = 'bench_1v0';
const PCHANNEL = 'bench';
/** The pchannel of the log of batched inserts. */
const BATCHED_PCHANNEL = 'bench-batched';
const ROOT = 'seg';
/** A flush that takes longer than this is reported as a failure, not waited for. */
const FLUSH_DEADLINE_MS = 10 * 60_000;
const MB = 2 ** 20;
/** Raw puts of a pass's objects: this many times, the median counts. */
const RAW_REPEATS = 3;

function base(type: Message['type'], tt: bigint): Pick<Message, 'vchannel' | 'timetick' | 'lastConfirmedId' | 'term'> & { type: typeof type } {
  return { type, vchannel: V, timetick: tt, lastConfirmedId: '', term: 1 };
}

/**
 * Writes CreateCollection, then `n` rows in inserts of `rowsPerInsert` rows (the last one may have
 * fewer) on `pchannel`, in segments sealed as the WAL seals them at the default limits: a segment
 * takes an insert while its rows and insert bytes stay within maxRows / maxBytes; one that cannot
 * take the next insert, or that is full after one, gets its Flush, and the next insert goes to a
 * new segment (CreateSegment with the limits the WAL writes).
 */
async function writeLog(backend: LocalWalBackend, pchannel: string, n: number, rowsPerInsert: number): Promise<{ bytes: number; lastId: string; segments: number; messages: number }> {
  const limits = DEFAULT_SEGMENT_LIMITS;
  const maxRows = Math.min(limits.maxRows, AUTO_ID_ROWS_PER_SEGMENT); // what the WAL puts in CreateSegment
  const maxBytes = limits.maxBytes;
  const log = await backend.open({ name: pchannel, term: 1, accessMode: 'rw' });
  let tt = 1n << 40n;
  let messages = 0;
  const next = (): bigint => (tt += 1n);
  let bytes = 0;
  let lastId = '';
  let batch: Uint8Array[] = [];
  const push = (m: Message): void => {
    const b = encodeMessage(m);
    bytes += b.length;
    messages++;
    batch.push(b);
  };
  const append = async (): Promise<void> => {
    if (batch.length === 0) return;
    const ids = await log.append(batch);
    lastId = ids[ids.length - 1]!;
    batch = [];
  };
  push({ ...base('CreateCollection', next()), type: 'CreateCollection', header: { collectionId: 1, partitionIds: [10] }, body: { collectionName: 'bench', schema: SCHEMA, partitions: [{ id: 10, name: '_default' }] } });
  let segmentId = 0;
  let open = false;
  let rows = 0;
  let segBytes = 0;
  const flush = (): void => {
    push({ ...base('Flush', next()), type: 'Flush', header: { collectionId: 1, partitionId: 10, segmentId }, body: {} } as Message);
    open = false;
  };
  const vec = new Float32Array(DIM * rowsPerInsert).fill(0.5);
  for (let j = 0; j < n; j += rowsPerInsert) {
    const rowsHere = Math.min(rowsPerInsert, n - j);
    const columns: Column[] = [
      { name: 'id', type: 'int64', data: Array.from({ length: rowsHere }, (_, k) => j + k + 1) },
      { name: 'vec', type: 'floatVector', dim: DIM, data: rowsHere === rowsPerInsert ? vec : vec.subarray(0, rowsHere * DIM) },
    ];
    const insertBytes = estimateInsertBytes(columns); // what the shard interceptor puts in the header
    if (open && (rows + rowsHere > maxRows || segBytes + insertBytes > maxBytes)) flush();
    if (!open) {
      segmentId++;
      push({ ...base('CreateSegment', next()), type: 'CreateSegment', header: { collectionId: 1, partitionId: 10, segmentId, maxRows, maxBytes }, body: {} });
      open = true;
      rows = 0;
      segBytes = 0;
    }
    push({
      ...base('Insert', next()),
      type: 'Insert',
      lastConfirmedId: sequenceId(2),
      header: { collectionId: 1, partitionId: 10, rows: rowsHere, bytes: insertBytes, segmentId },
      body: { columns },
    } as Message);
    rows += rowsHere;
    segBytes += insertBytes;
    if (rows >= maxRows || segBytes >= maxBytes) flush();
    if (batch.length >= 1000) await append();
    if (j % 200_000 < rowsPerInsert) progress(`${pchannel}: wrote ${j} rows`);
  }
  if (open) flush(); // the last segment, sealed by the idle policy
  await append();
  await log.close();
  return { bytes, lastId, segments: segmentId, messages };
}

/** s3rver in a child process (the fixture of test/support/s3rver.ts), as a MinIO would run beside the node. */
async function startS3rverProcess(): Promise<{ server: Pick<S3rverFixture, 'endpoint' | 'accessKey' | 'secretKey' | 'region'>; stop(): Promise<void> }> {
  const fixture = path.join(__dirname, '..', 'support', 's3rver');
  const code = `
    const { startS3rver } = require(${JSON.stringify(fixture)});
    startS3rver({ conditionalWrites: true }).then((s) => {
      const stop = () => s.stop().then(() => process.exit(0), () => process.exit(1));
      process.on('message', (m) => { if (m === 'stop') stop(); });
      process.on('disconnect', stop);
      process.send({ endpoint: s.endpoint, accessKey: s.accessKey, secretKey: s.secretKey, region: s.region });
    }, (e) => { console.error(e); process.exit(1); });`;
  const child: ChildProcess = spawn(process.execPath, ['-r', 'ts-node/register', '-e', code], {
    cwd: path.join(__dirname, '..', '..'),
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const server = await new Promise<Pick<S3rverFixture, 'endpoint' | 'accessKey' | 'secretKey' | 'region'>>((resolve, reject) => {
    child.once('message', (m) => resolve(m as Pick<S3rverFixture, 'endpoint' | 'accessKey' | 'secretKey' | 'region'>));
    child.once('exit', (code) => reject(new Error(`s3rver process exited with ${code}`)));
    child.once('error', reject);
  });
  return {
    server,
    async stop() {
      if (child.exitCode === null && child.connected) child.send('stop');
      await exited;
    },
  };
}

/** One pass of the flush of every segment, and the raw puts of what it wrote. */
interface PassResult {
  flushSec: number;
  /** The median of RAW_REPEATS raw puts of the pass's objects. */
  rawSec: number;
  /** Bytes the flush put (data files and manifests). */
  written: number;
  objects: number;
  /** Seconds the write buffer took to encode the segments as their messages were fed to it (0: the flush read the WAL). */
  feedSec: number;
}

/** Where a flush takes a segment's rows from: its WAL range read back, or the write buffer that encoded it as it grew. */
type FlushSource = 'WAL range' | 'write buffer';

interface StoreResult {
  /** Flush threads the worker used (0: the main thread). */
  threads: number;
  /** Jobs the queue ran at a time, and raw puts at a time. */
  concurrency: number;
  /** The first pass, on a worker just built (its threads start with the first jobs), then passes on the same worker, running. */
  first: PassResult;
  running: PassResult[];
}

/**
 * Flushes every segment through an InlineFlushQueue and the flush worker built as standalone builds
 * them from `config` (its objectStore is `objects`; its WAL directory is the backend's), 1 +
 * `runningPasses` times on the same worker: first as a node's first flushes (the threads start with
 * the first jobs, cold JIT and buffers), then again as a node that has been flushing (each pass at
 * a new owner term, so that it commits its own segments). After each pass, the same objects are put
 * again (under `raw/`), as many at a time as the queue runs jobs: each ratio pairs a flush with raw
 * puts made right after it.
 */
async function flushInto(config: WalstreamConfig, objects: ObjectStore, backend: LocalWalBackend, meta: MetaStore, flushed: FlushedLog, source: FlushSource, runningPasses: number, logger: Logger): Promise<StoreResult> {
  const worker = createFlushWorker(config, { backend, objects, meta, logger });
  const queue = new InlineFlushQueue(worker, systemClock, { logger });
  const concurrency = defaultConcurrency(worker); // what the queue runs at, as standalone runs it
  const { pchannel, segments } = flushed;
  // From the write buffer: before each pass, the log is fed to it as the owner's recovery storage feeds it.
  const writeBuffer = worker.writeBuffer;
  if ((source === 'write buffer') !== (writeBuffer !== undefined)) throw new Error(`flush from the ${source}: the worker has ${writeBuffer ? 'a' : 'no'} write buffer`);
  const prepare = writeBuffer ? (term: number) => feedWriteBuffer(writeBuffer.channel(pchannel, term), backend, flushed) : undefined;
  try {
    const pass = async (): Promise<PassResult> => {
      const before = worker.sources;
      const p = await flushPass(queue, objects, meta, pchannel, segments, concurrency, prepare);
      const after = worker.sources;
      const fromBuffer = after.writeBuffer - before.writeBuffer;
      if (fromBuffer !== (source === 'write buffer' ? segments.length : 0)) throw new Error(`flush from the ${source}: ${fromBuffer} of ${segments.length} segments came from the write buffer`);
      return p;
    };
    const first = await pass();
    const running: PassResult[] = [];
    for (let i = 0; i < runningPasses; i++) running.push(await pass());
    return { threads: worker.threads?.size ?? 0, concurrency, first, running };
  } finally {
    await queue.close();
    await worker.close();
  }
}

/**
 * Feeds the log's entries up to its last flush marker to `channel`, as the owner's recovery storage
 * feeds each persisted message (its header decoded, as the recovery state sees it, and its bytes).
 * Returns the seconds spent in the write buffer alone (ChannelWriteBuffer.persisted): the cost a
 * node pays on its WAL's thread, per message persisted.
 */
async function feedWriteBuffer(channel: ChannelWriteBuffer, backend: LocalWalBackend, flushed: FlushedLog): Promise<number> {
  const state = new RecoveryState();
  const schemaOf = (vchannel: string, collectionId: number): CollectionSchema | undefined => state.vchannels.collection(vchannel, collectionId)?.schema;
  const log = await backend.open({ name: flushed.pchannel, term: 0, accessMode: 'ro' });
  let sec = 0;
  try {
    await forEachEntry(log, { policy: { type: 'all' }, transient: true }, (entry) => {
      const lazy = decodeLazily(entry.data, { verified: entry.verified === true });
      const m = { ...lazy.header, body: lazy.header.type === 'Insert' ? {} : lazy.body(), id: entry.id, size: entry.data.length } as LogMessage;
      const sealed = state.observe(m);
      const t0 = performance.now();
      channel.persisted(m, entry.data, sealed, schemaOf);
      sec += (performance.now() - t0) / 1000;
      return entry.id < flushed.lastId;
    });
  } finally {
    await log.close();
  }
  if (channel.size !== flushed.segments.length) throw new Error(`write buffer holds ${channel.size} segments of ${flushed.pchannel}, the log has ${flushed.segments.length}`);
  return sec;
}

async function flushPass(queue: InlineFlushQueue, objects: ObjectStore, meta: MetaStore, pchannel: string, segments: SegmentRecord[], concurrency: number, prepare?: (term: number) => Promise<number>): Promise<PassResult> {
  // A new owner term for each pass: the commits this pass makes are the ones at this term.
  await meta.bumpTerm(pchannel, await meta.pchannelTerm(pchannel));
  const term = await meta.pchannelTerm(pchannel);
  const feedSec = prepare ? await prepare(term) : 0;
  const jobs: FlushJob[] = segments.map((s) => ({
    pchannel,
    term,
    segmentId: s.segmentId,
    vchannel: s.vchannel,
    collectionId: s.collectionId,
    partitionId: s.partitionId,
    schema: SCHEMA,
    fromId: s.createId,
    toId: s.flushId!,
    toTimetick: s.flushTimetick!,
  }));
  const [completed, failed] = [queue.completed, queue.failed];
  let deadline: NodeJS.Timeout | undefined;
  let flushSec: number;
  try {
    const t0 = performance.now();
    for (const job of jobs) await queue.submit(job);
    await Promise.race([
      queue.drained(),
      new Promise<never>((_, reject) => {
        deadline = setTimeout(() => reject(new Error(`flush not done within ${FLUSH_DEADLINE_MS} ms`)), FLUSH_DEADLINE_MS);
      }),
    ]);
    flushSec = (performance.now() - t0) / 1000;
  } finally {
    clearTimeout(deadline);
  }
  if (queue.completed - completed !== jobs.length || queue.failed !== failed) throw new Error(`flush: ${queue.completed - completed} of ${jobs.length} jobs committed, ${queue.failed - failed} failed`);
  for (const s of segments) {
    const v = await meta.get(pchannelKey(pchannel, flushedKeyPath(s.segmentId)));
    const record = v === undefined ? undefined : (JSON.parse(v.value) as FlushedSegment);
    if (record?.term !== term || record.rows !== s.rows) throw new Error(`segment ${s.segmentId} not committed at term ${term} with ${s.rows} rows: ${v?.value}`);
  }

  // Raw: the very objects the flush wrote, read back first, then put `concurrency` at a time,
  // RAW_REPEATS times (the median: a put's speed into a local directory varies several-fold).
  const flushed: { key: string; bytes: Uint8Array }[] = [];
  for await (const o of objects.list(`${ROOT}/`)) flushed.push({ key: o.key, bytes: await objects.get(o.key) });
  const written = flushed.reduce((sum, o) => sum + o.bytes.byteLength, 0);
  const rawSecs: number[] = [];
  for (let repeat = 0; repeat < RAW_REPEATS; repeat++) {
    let nextObject = 0;
    const putter = async (): Promise<void> => {
      while (nextObject < flushed.length) {
        const o = flushed[nextObject++]!;
        await objects.put(`raw/${o.key}`, o.bytes);
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, putter));
    rawSecs.push((performance.now() - t0) / 1000);
    await objects.deletePrefix('raw/');
  }
  await objects.deletePrefix(`${ROOT}/`); // the next pass writes them again
  return { flushSec, rawSec: median(rawSecs), written, objects: flushed.length, feedSec };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A log whose sealed segments are flushed: its pchannel, rows per insert and what replay found. */
interface FlushedLog {
  pchannel: string;
  rowsPerInsert: number;
  /** Bytes of the WAL entries written. */
  bytes: number;
  /** Messages written, and the id of the last (the last segment's flush marker). */
  messages: number;
  lastId: string;
  segments: SegmentRecord[];
}

/** The sealed segments a new owner of `pchannel` finds on replay (the whole tail), checked against what was written. */
async function sealedSegments(backend: LocalWalBackend, meta: MetaStore, pchannel: string, expected: number, logger: Logger): Promise<{ segments: SegmentRecord[]; replayed: number; sec: number }> {
  const log = await backend.open({ name: pchannel, term: 2, accessMode: 'rw' });
  try {
    const [untilId] = await log.append([encodeMessage({ ...base('TimeTick', 1n << 50n), vchannel: '', type: 'TimeTick', header: {}, body: {} } as Message)]);
    const t0 = performance.now();
    const r = await recover({ pchannel, log, meta, untilId: untilId!, clock: systemClock, logger });
    const sec = (performance.now() - t0) / 1000;
    const segments = [...r.state.segments.values()].filter((s) => s.state === 'sealed' && s.flushId !== undefined).sort((a, b) => a.segmentId - b.segmentId);
    if (segments.length !== expected) throw new Error(`replay of ${pchannel} found ${segments.length} sealed segments, the log has ${expected}`);
    return { segments, replayed: r.replayed, sec };
  } finally {
    await log.close();
  }
}

export async function runRecoveryBench(): Promise<void> {
  const n = Number(process.env.BENCH_REPLAY_MESSAGES ?? 1_000_000);
  const batchRows = Number(process.env.BENCH_BATCH_ROWS ?? 100);
  const runningPasses = Number(process.env.BENCH_FLUSH_PASSES ?? 3);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-recovery-'));
  const logger = createLogger('bench');
  logger.level = 'warn';
  let s3rver: Awaited<ReturnType<typeof startS3rverProcess>> | undefined;
  try {
    const backend = new LocalWalBackend({ dir: path.join(dir, 'wal'), fsync: 'interval', fsyncIntervalMs: 100 });
    progress(`writing a ${n}-insert log, segments sealed at the default limits`);
    const single = await writeLog(backend, PCHANNEL, n, 1);
    progress(`writing the same ${n} rows in inserts of ${batchRows} rows`);
    const batched = await writeLog(backend, BATCHED_PCHANNEL, n, batchRows);

    // Raw: read every entry, no decoding.
    progress('bare read');
    const ro = await backend.open({ name: PCHANNEL, term: 0, accessMode: 'ro' });
    const abort = new AbortController();
    const t0 = performance.now();
    let count = 0;
    for await (const e of ro.read({ policy: { type: 'all' }, signal: abort.signal })) {
      count++;
      if (e.id >= single.lastId) break;
    }
    const bareRate = count / ((performance.now() - t0) / 1000);
    abort.abort();
    await ro.close();

    // Replay: what a new owner does on open (no checkpoint: the whole tail).
    progress('replay');
    const meta = await EmbeddedMetaStore.open({ dir: path.join(dir, 'meta') });
    const replay = await sealedSegments(backend, meta, PCHANNEL, single.segments, logger);
    const replayRate = replay.replayed / replay.sec;
    const logs: FlushedLog[] = [
      { pchannel: PCHANNEL, rowsPerInsert: 1, bytes: single.bytes, messages: single.messages, lastId: single.lastId, segments: replay.segments },
      { pchannel: BATCHED_PCHANNEL, rowsPerInsert: batchRows, bytes: batched.bytes, messages: batched.messages, lastId: batched.lastId, segments: (await sealedSegments(backend, meta, BATCHED_PCHANNEL, batched.segments, logger)).segments },
    ];

    // Flush: every sealed segment the replay found, through the flush queue, into each store.
    const rows: Row[] = [
      { what: 'bare read of the log (no decode)', rate: `${fmt(bareRate)} msg/s`, ratio: '' },
      { what: 'replay (decode + recovery state)', rate: `${fmt(replayRate)} msg/s`, ratio: fmt(replayRate / bareRate, 2) },
    ];
    const flushRows: Row[] = [];
    const written = new Map<string, { bytes: number; objects: number }>();
    const report = (store: string, flushed: FlushedLog, source: FlushSource, res: StoreResult): void => {
      written.set(flushed.pchannel, { bytes: res.first.written, objects: res.first.objects });
      const on = res.threads === 0 ? 'main thread' : `${res.threads} flush threads`;
      const rate = (p: PassResult, sec: number): number => p.written / MB / sec;
      for (const [pass, passes] of [
        [res.threads === 0 ? 'first (node just started)' : 'first (threads start with the jobs)', [res.first]],
        [`running (the same worker again): median of ${res.running.length}`, res.running],
      ] as const) {
        const ratios = passes.map((p) => p.rawSec / p.flushSec).sort((a, b) => a - b);
        flushRows.push({
          'rows/insert': flushed.rowsPerInsert,
          store,
          from: source,
          'flush on': on,
          'at a time': res.concurrency,
          pass,
          flush: `${fmt(median(passes.map((p) => rate(p, p.flushSec))), 1)} MB/s`,
          'raw puts': `${fmt(median(passes.map((p) => rate(p, p.rawSec))), 1)} MB/s`,
          ratio: fmt(median(ratios), 2),
          'ratios (each pass)': ratios.length === 1 ? '' : ratios.map((r) => fmt(r, 2)).join(' '),
          'encoding as persisted': source === 'write buffer' ? `${fmt((median(passes.map((p) => p.feedSec)) / flushed.messages) * 1e6, 2)} µs/msg` : '',
        });
      }
    };
    /** The configuration a standalone process on `dir` would have, with this object store. */
    // The write buffer holds every segment of a log at once (all are fed before a pass flushes them).
    const writeBufferBytes = String(2 ** 30);
    const configWith = (threads: number, source: FlushSource, objectStore: Record<string, string>): WalstreamConfig =>
      loadConfig({ flags: { dataDir: dir, 'objectStore.rootPath': ROOT, 'flush.threads': String(threads), 'flush.writeBufferBytes': source === 'write buffer' ? writeBufferBytes : '0', ...objectStore } });
    const defaultThreads = loadConfig({ flags: { dataDir: dir } }).flush.threads;
    // The WAL range on the default threads and on the main thread; the write buffer on the default threads.
    const ways: [FlushSource, number][] = [
      ['WAL range', defaultThreads],
      ['WAL range', 0],
      ['write buffer', defaultThreads],
    ];
    /** Every log's segments into `objects`, each way. */
    const flushAll = async (store: string, objects: ObjectStore, objectStore: Record<string, string>): Promise<void> => {
      for (const flushed of logs) {
        for (const [source, threads] of ways) {
          progress(`flush of ${flushed.segments.length} segments (${flushed.rowsPerInsert} rows/insert) from the ${source} into the ${store} object store (flush.threads = ${threads})`);
          report(store, flushed, source, await flushInto(configWith(threads, source, objectStore), objects, backend, meta, flushed, source, runningPasses, logger));
        }
      }
    };

    const local = await LocalObjectStore.open({ dir: path.join(dir, 'objects') });
    try {
      await flushAll('local', local, { 'objectStore.kind': 'local', 'objectStore.local.dir': path.join(dir, 'objects') });
    } finally {
      await local.close();
    }

    s3rver = await startS3rverProcess();
    const { server } = s3rver;
    const endpoint = new URL(server.endpoint);
    const s3 = await S3ObjectStore.open({ endpoint: server.endpoint, accessKey: server.accessKey, secretKey: server.secretKey, region: server.region, bucket: 'walstream-bench' });
    try {
      await flushAll('s3', s3, {
        'objectStore.kind': 's3',
        'objectStore.s3.endPoint': endpoint.hostname,
        'objectStore.s3.port': endpoint.port,
        'objectStore.s3.accessKey': server.accessKey,
        'objectStore.s3.secretKey': server.secretKey,
        'objectStore.s3.region': server.region,
        'objectStore.s3.bucket': 'walstream-bench',
      });
    } finally {
      await s3.close();
    }
    await meta.close();
    await backend.close();

    const maxMiB = DEFAULT_SEGMENT_LIMITS.maxBytes / MB;
    const describe = (l: FlushedLog, messages: number): string => {
      const w = written.get(l.pchannel)!;
      return `${l.rowsPerInsert} row${l.rowsPerInsert === 1 ? '' : 's'}/insert: ${fmt(messages)} messages, ${l.segments.length} segments, read ${fmt(l.bytes / MB, 0)} MB of WAL, put ${fmt(w.bytes / MB, 0)} MB in ${w.objects} objects`;
    };
    printTable(`Recovery: replay of a ${fmt(replay.replayed)}-message tail (local backend), beside a bare read of the same entries`, rows);
    printTable(
      `Flush of the segments (sealed at ${fmt(maxMiB)} MiB / ${fmt(DEFAULT_SEGMENT_LIMITS.maxRows)} rows) of ${fmt(n)} rows, written as ${describe(logs[0]!, single.messages)}; and as ${describe(logs[1]!, batched.messages)}. From the WAL range: read it back, encode Arrow, put the files. From the write buffer (the node's usual way): the segments were encoded as their messages were persisted (fed before the pass; that cost, on the WAL's thread, is "encoding as persisted"), the pass writes their files. Through the inline flush queue at its default concurrency (jobs at a time), first on a new worker then ${runningPasses} more times on it, each pass beside raw puts of the same objects as many at a time into the same store right after it (the median of ${RAW_REPEATS}; ratio = flush rate / raw rate of the pass)`,
      flushRows,
    );
  } finally {
    await s3rver?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
