/**
 * Recovery storage benchmark: replay rate when recovering a 1M-message tail on the local backend
 * (beside a bare read of the same entries in the same run), and flush throughput into the object
 * store (the real SegmentFlushWorker job: read the WAL range, encode Arrow, checksums, put the files
 * and the manifest, commit) beside raw puts of the same objects into the same store.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { systemClock } from '../../runtime/clock';
import { createLogger } from '../../runtime/logger';
import { encodeMessage } from '../../runtime/message/codec';
import type { CollectionSchema, Message } from '../../runtime/message/types';
import { sequenceId } from '../../runtime/message/message-id';
import { LocalWalBackend } from '../../storage/wal/local/local-backend';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { LocalObjectStore } from '../../storage/objects/local/local-object-store';
import { SegmentFlushWorker } from '../../storage/flush/flush-worker';
import { recover } from '../../actors/recovery-storage/replay';
import { fmt, printTable, progress } from './table';

const DIM = 112;
const SCHEMA: CollectionSchema = { fields: [{ name: 'id', type: 'int64', primaryKey: true }, { name: 'vec', type: 'floatVector', dim: DIM }] };
const V = 'bench_1v0';

function base(type: Message['type'], tt: bigint): Pick<Message, 'vchannel' | 'timetick' | 'lastConfirmedId' | 'term'> & { type: typeof type } {
  return { type, vchannel: V, timetick: tt, lastConfirmedId: '', term: 1 };
}

/** Writes CreateCollection, CreateSegment(1), `n` single-row inserts into segment 1, then Flush(1). */
async function writeLog(backend: LocalWalBackend, n: number): Promise<{ bytes: number; lastId: string }> {
  const log = await backend.open({ name: 'bench', term: 1, accessMode: 'rw' });
  let tt = 1n << 40n;
  const next = (): bigint => (tt += 1n);
  const head: Message[] = [
    { ...base('CreateCollection', next()), type: 'CreateCollection', header: { collectionId: 1, partitionIds: [10] }, body: { collectionName: 'bench', schema: SCHEMA, partitions: [{ id: 10, name: '_default' }] } },
    { ...base('CreateSegment', next()), type: 'CreateSegment', header: { collectionId: 1, partitionId: 10, segmentId: 1, maxRows: n, maxBytes: 1 << 30 }, body: {} },
  ];
  await log.append(head.map((m) => encodeMessage(m)));
  let bytes = 0;
  const vec = new Float32Array(DIM).fill(0.5);
  let lastId = '';
  for (let i = 0; i < n; i += 1000) {
    const batch: Uint8Array[] = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const b = encodeMessage({
        ...base('Insert', next()),
        type: 'Insert',
        lastConfirmedId: sequenceId(2),
        header: { collectionId: 1, partitionId: 10, rows: 1, bytes: 8 + DIM * 4, segmentId: 1 },
        body: { columns: [{ name: 'id', type: 'int64', data: [j + 1] }, { name: 'vec', type: 'floatVector', dim: DIM, data: vec }] },
      } as Message);
      bytes += b.length;
      batch.push(b);
    }
    const ids = await log.append(batch);
    lastId = ids[ids.length - 1]!;
    if (i % 200_000 === 0) progress(`wrote ${i} messages`);
  }
  const [flushId] = await log.append([encodeMessage({ ...base('Flush', next()), type: 'Flush', header: { collectionId: 1, partitionId: 10, segmentId: 1 }, body: {} } as Message)]);
  await log.close();
  return { bytes, lastId: flushId ?? lastId };
}

export async function runRecoveryBench(): Promise<void> {
  const n = Number(process.env.BENCH_REPLAY_MESSAGES ?? 1_000_000);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-recovery-'));
  const logger = createLogger('bench');
  logger.level = 'warn';
  try {
    const backend = new LocalWalBackend({ dir: path.join(dir, 'wal'), fsync: 'interval', fsyncIntervalMs: 100 });
    progress(`writing a ${n}-message log`);
    const { bytes, lastId } = await writeLog(backend, n);

    // Raw: read every entry, no decoding.
    progress('bare read');
    const ro = await backend.open({ name: 'bench', term: 0, accessMode: 'ro' });
    const abort = new AbortController();
    let t0 = performance.now();
    let count = 0;
    for await (const e of ro.read({ policy: { type: 'all' }, signal: abort.signal })) {
      count++;
      if (e.id >= lastId) break;
    }
    const bareRate = count / ((performance.now() - t0) / 1000);
    abort.abort();
    await ro.close();

    // Replay: what a new owner does on open (no checkpoint: the whole tail).
    progress('replay');
    const meta = await EmbeddedMetaStore.open({ dir: path.join(dir, 'meta') });
    const log = await backend.open({ name: 'bench', term: 2, accessMode: 'rw' });
    const [untilId] = await log.append([encodeMessage({ ...base('TimeTick', 1n << 50n), vchannel: '', type: 'TimeTick', header: {}, body: {} } as Message)]);
    t0 = performance.now();
    const r = await recover({ pchannel: 'bench', log, meta, untilId: untilId!, clock: systemClock, logger });
    const replayRate = r.replayed / ((performance.now() - t0) / 1000);
    await log.close();

    // Flush: the whole segment (n rows) to a local object store, beside raw puts of the same bytes.
    progress('flush');
    const objects = await LocalObjectStore.open({ dir: path.join(dir, 'objects') });
    await meta.bumpTerm('bench', await meta.pchannelTerm('bench'));
    const term = await meta.pchannelTerm('bench');
    const worker = new SegmentFlushWorker({ backend, objects, meta, root: 'seg' });
    const seg = r.state.segments.get(1)!;
    t0 = performance.now();
    await worker.process({ pchannel: 'bench', term, segmentId: 1, vchannel: V, collectionId: 1, partitionId: 10, schema: SCHEMA, fromId: seg.createId, toId: seg.flushId!, toTimetick: seg.flushTimetick! });
    const flushSec = (performance.now() - t0) / 1000;
    // Raw: the very objects the flush wrote (same sizes and bytes, same store), put one after the other.
    const flushed: { key: string; bytes: Uint8Array }[] = [];
    for await (const o of objects.list('seg/')) flushed.push({ key: o.key, bytes: await objects.get(o.key) });
    const written = flushed.reduce((n, o) => n + o.bytes.byteLength, 0);
    t0 = performance.now();
    for (const o of flushed) await objects.put(`raw/${o.key}`, o.bytes);
    const rawSec = (performance.now() - t0) / 1000;
    await objects.close();
    await meta.close();
    await backend.close();

    printTable(`Recovery: replay of a ${n}-message tail (local backend) and flush of one ${n}-row segment (local object store)`, [
      { what: 'bare read of the log (no decode)', rate: `${fmt(bareRate)} msg/s`, ratio: '' },
      { what: 'replay (decode + recovery state)', rate: `${fmt(replayRate)} msg/s`, ratio: fmt(replayRate / bareRate, 2) },
      { what: 'raw puts of the same bytes', rate: `${fmt(written / 2 ** 20 / rawSec, 1)} MB/s`, ratio: '' },
      { what: `flush (read ${fmt(bytes / 2 ** 20, 0)} MB of WAL, encode Arrow, put ${fmt(written / 2 ** 20, 0)} MB)`, rate: `${fmt(written / 2 ** 20 / flushSec, 1)} MB/s`, ratio: fmt(rawSec / flushSec, 2) },
    ]);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
