/**
 * Builds WALs for tests: an actor system, a backend, a timestamp oracle, and WAL handles.
 * Also the small message builders tests share.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { start, stop, type Ref } from 'nact';
import type { MetaStore } from '../../storage/meta/meta-store';
import type { FlushedSegment } from '../../storage/flush/flush-worker';
import { flushedWatchPrefix } from '../../actors/recovery-storage/persisted';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import type { SegmentLimits } from '../../actors/wal/segments';
import type { WriteBuffer } from '../../storage/flush/write-buffer';
import type { RecoveryOptions } from '../../actors/recovery-storage/recovery-actor';
import { RecordingFlushQueue } from './recording-flush-queue';
import { SteppableClock, systemClock, type Clock } from '../../runtime/clock';
import { MemoryTsoStore, TimestampOracle, TsoAllocator } from '../../runtime/tso';
import type { CollectionSchema, Column, NewMessage, InsertMessage, LogMessage } from '../../runtime/message/types';
import type { PChannelInfo, WalBackend, WalLog } from '../../storage/wal/backend';
import { spawnWal } from '../../actors/wal/wal-actor';
import { WalHandle } from '../../actors/wal/wal-handle';
import { walOptions, type WalOptions } from '../../actors/wal/options';
import type { Scanner } from '../../actors/wal/scanner/scanner';

export const SCHEMA: CollectionSchema = {
  fields: [
    { name: 'id', type: 'int64', primaryKey: true },
    { name: 'vec', type: 'floatVector', dim: 4 },
    { name: 'tag', type: 'varchar', maxLength: 64 },
  ],
};

export interface WalFixture {
  system: Ref<never>;
  meta: MetaStore;
  flushQueue: RecordingFlushQueue;
  clock: SteppableClock;
  oracle: TimestampOracle;
  backend: WalBackend;
  open(pchannel: string, term: number, options?: Partial<WalOptions>): Promise<WalHandle>;
  close(): Promise<void>;
}

export async function walFixture(backend: WalBackend, base: Clock = systemClock, opts: { segmentLimits?: SegmentLimits; recovery?: Partial<RecoveryOptions>; writeBuffer?: WriteBuffer } = {}): Promise<WalFixture> {
  const system = start() as Ref<never>;
  const clock = new SteppableClock(base);
  const metaDir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-meta-'));
  const meta = await EmbeddedMetaStore.open({ dir: metaDir, clock });
  const flushQueue = new RecordingFlushQueue();
  const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock });
  const handles: WalHandle[] = [];
  return {
    system,
    meta,
    flushQueue,
    clock,
    oracle,
    backend,
    async open(pchannel, term, options = {}) {
      const tso = new TsoAllocator({ source: oracle, clock });
      // The coordinator raises the pchannel's fencing term before it opens the WAL; so does the fixture.
      for (let cur = await meta.pchannelTerm(pchannel); cur < term; cur = await meta.pchannelTerm(pchannel)) await meta.bumpTerm(pchannel, cur);
      const ref = spawnWal(
        system,
        {
          channel: { name: pchannel, term, accessMode: 'rw' },
          backend,
          tso,
          clock,
          options: walOptions(options),
          meta,
          flushQueue,
          segmentIds: { next: () => meta.nextId('segment') },
          ...(opts.segmentLimits ? { segmentLimits: opts.segmentLimits } : {}),
          ...(opts.recovery ? { recovery: opts.recovery } : {}),
          ...(opts.writeBuffer ? { writeBuffer: opts.writeBuffer } : {}),
        },
        { name: `wal-${pchannel}-t${term}` },
      );
      const h = new WalHandle(ref, pchannel, 10_000);
      handles.push(h);
      return h;
    },
    async close() {
      await Promise.all(handles.map((h) => h.close({ timeoutMs: 5000 }).catch(() => undefined)));
      stop(system);
      await oracle.close();
      await backend.close();
      await meta.close();
      await fs.rm(metaDir, { recursive: true, force: true });
    },
  };
}

let nextRow = 1;

export function insert(vchannel: string, collectionId: number, rows = 1, partitionId = collectionId * 10, tag = 'x'): NewMessage<InsertMessage> {
  const ids: number[] = [];
  const tags: string[] = [];
  const vec = new Float32Array(rows * 4);
  for (let i = 0; i < rows; i++) {
    const id = nextRow++;
    ids.push(id);
    tags.push(tag);
    vec.set([id, id + 0.5, -id, 0.25], i * 4);
  }
  return {
    type: 'Insert',
    vchannel,
    header: { collectionId, partitionId, rows, bytes: 0, segmentId: 0 },
    body: {
      columns: [
        { name: 'id', type: 'int64', data: ids },
        { name: 'vec', type: 'floatVector', dim: 4, data: vec },
        { name: 'tag', type: 'varchar', data: tags },
      ],
    },
  };
}

export function createCollection(vchannel: string, collectionId: number, partitionIds = [collectionId * 10]): NewMessage {
  return {
    type: 'CreateCollection',
    vchannel,
    header: { collectionId, partitionIds },
    body: { collectionName: `c${collectionId}`, schema: SCHEMA, partitions: partitionIds.map((id, i) => ({ id, name: i === 0 ? '_default' : `p${id}` })) },
  };
}

export function dropCollection(vchannel: string, collectionId: number): NewMessage {
  return { type: 'DropCollection', vchannel, header: { collectionId }, body: {} };
}

/** Columns of `n` rows of SCHEMA with keys from..from+n-1 (vec = [id, id/3, -id, 0.1], tag = `row-<id>`). */
export function schemaRows(from: number, n: number): Column[] {
  const ids = Array.from({ length: n }, (_, i) => from + i);
  const vec = new Float32Array(n * 4);
  ids.forEach((id, i) => vec.set([id, id / 3, -id, Math.fround(0.1)], i * 4));
  return [
    { name: 'id', type: 'int64', data: ids },
    { name: 'vec', type: 'floatVector', dim: 4, data: vec },
    { name: 'tag', type: 'varchar', data: ids.map((i) => `row-${i}`) },
  ];
}

/** Primary keys of an Insert (or of every Insert in a Txn). */
export function primaryKeys(m: LogMessage): number[] {
  if (m.type === 'Insert') return m.body.columns[0]!.data as number[];
  if (m.type === 'Txn') return m.body.messages.flatMap((b) => primaryKeys(b));
  return [];
}

/** Takes messages from a scanner until `until` says stop, or fails after `timeoutMs`. */
export async function collect(scanner: Scanner, until: (got: LogMessage[]) => boolean, timeoutMs = 10_000): Promise<LogMessage[]> {
  const got: LogMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!until(got)) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`collect: condition not met within ${timeoutMs} ms; got ${got.length} messages`);
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      scanner.next(),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), remaining))),
    ]);
    clearTimeout(timer);
    if (r === 'timeout') continue;
    if (r.done) throw new Error(`collect: subscription ended after ${got.length} messages`);
    got.push(r.value);
  }
  return got;
}

/** Polls `probe` until it returns true, or fails after `timeoutMs`. */
export async function eventually(probe: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A backend like `inner` whose logs append through `wrap(log, channel)` (given the inner log, it
 * returns the append to use: count, delay, fail or hold writes); everything else is the inner
 * log's. `closeInner: false` leaves the inner backend open on close (a backend shared with others).
 */
export function interceptAppends(
  inner: WalBackend,
  name: string,
  wrap: (log: WalLog, channel: PChannelInfo) => WalLog['append'],
  opts: { closeInner?: boolean } = {},
): WalBackend {
  return {
    name,
    close: () => (opts.closeInner === false ? Promise.resolve() : inner.close()),
    async open(ch) {
      const log = await inner.open(ch);
      return {
        channel: log.channel,
        append: wrap(log, ch),
        read: (o) => log.read(o),
        truncate: (id) => log.truncate(id),
        oldestId: () => log.oldestId(),
        close: () => log.close(),
      };
    },
  };
}

/** The flushed-segment records of a pchannel (what flush commits wrote to the MetaStore), by segment id. */
export async function flushedSegments(owner: { meta: MetaStore }, pchannel: string): Promise<FlushedSegment[]> {
  const all = await owner.meta.list(flushedWatchPrefix(pchannel));
  return [...all.values()].map((v) => JSON.parse(v.value) as FlushedSegment).sort((a, b) => a.segmentId - b.segmentId);
}
