/**
 * The write buffer of a process: each growing segment its WALs create is encoded while its
 * messages are persisted, so that its flush job only writes the files out instead of reading the
 * segment's WAL range back and encoding it then (as a Milvus streaming node flushes growing
 * segments from its write buffer). The recovery storage of each pchannel feeds its part, a
 * ChannelWriteBuffer, every persisted message with its bytes, in log order; the flush worker takes
 * a segment out when it runs the segment's job (SegmentFlushWorker).
 *
 * A segment is fed exactly what the flush would read back from the WAL — the entries from its
 * CreateSegment on, through the same SegmentRows — so both ways encode the same files. The WAL
 * stays the source of truth: a job finds nothing here, and reads its range, when
 * - the segment was created before this owner opened the pchannel (its first entries were never
 *   fed: after a restart or a move, on another node of a cluster, or its job is a retry),
 * - its job runs before the segment is complete (a transaction with rows in it is still open at
 *   its flush marker) or on another process (a BullMQ worker elsewhere),
 * - it was dropped to keep the buffer within `maxBytes` (complete segments not yet taken go first,
 *   the one completed last first, then the largest growing one),
 * - it failed to encode (then the read-back fails the same way, as a job error), or feeding its
 *   pchannel failed (nothing more is buffered for it at this term).
 * A segment leaves the buffer when its job takes it, when it is flushed elsewhere, dropped with
 * its collection or partition, when its job is not queued or is fenced, or when its pchannel
 * closes here or is fenced.
 */
import type { Logger } from '../../runtime/logger';
import { createLogger } from '../../runtime/logger';
import { toStreamingError } from '../../runtime/errors';
import type { MessageId } from '../../runtime/message/message-id';
import type { CollectionSchema, LogMessage } from '../../runtime/message/types';
import type { FlushJob } from './flush-queue';
import { SegmentRows } from './flush-files';
import { BatchBufferPool } from '../segments/table-builder';

export interface WriteBufferOptions {
  /** Bytes held at most (see SegmentRows.heldBytes); beyond, segments are dropped (their flushes read the WAL). 0: nothing is buffered. */
  maxBytes: number;
  /** Layout root of segments in the object store (as the flush worker's). */
  root: string;
  logger?: Logger;
}

/** What the buffer did since it was made (status and tests). */
export interface WriteBufferStats {
  /** Segments held now, and the bytes they hold (record batches, kept deletes, open transactions). */
  segments: number;
  heldBytes: number;
  /** Segments taken complete by their flush job. */
  taken: number;
  /** Segments dropped to stay within maxBytes. */
  evicted: number;
  /** Segments whose job came before they were complete or for another range, that failed to encode, and failed feeds of a pchannel. */
  missed: number;
}

/** One segment being encoded, or complete and waiting for its job: what its job must name (fromId: its CreateSegment's id). */
interface BufferedSegment extends Pick<FlushJob, 'pchannel' | 'term' | 'segmentId' | 'vchannel' | 'collectionId' | 'partitionId' | 'fromId'> {
  /** Its rows; their markerId is the job's toId once the flush marker is persisted. */
  rows: SegmentRows;
  /** rows.heldBytes when last counted into the buffer's total. */
  bytes: number;
  /** The part of the buffer that feeds it. */
  channel: ChannelWriteBuffer;
  /** When it became complete (WriteBuffer's count of completions), 0 while growing. */
  completed: number;
}

function keyOf(pchannel: string, term: number, segmentId: number): string {
  return `${pchannel}\u0000${term}\u0000${segmentId}`;
}

/** Batch buffers kept for the next segments once a flush wrote them, at most (besides maxBytes). */
const SPARE_BUFFER_BYTES = 256 * 1024 * 1024;
/** Spare batch buffers are dropped when none was taken or given for this long. */
const SPARE_BUFFER_IDLE_MS = 30_000;

export class WriteBuffer {
  private readonly segments = new Map<string, BufferedSegment>();
  /**
   * Batch buffers of segments already written, for the segments that grow next: fresh memory
   * costs a page fault per 4 KiB on first write, far more than the copies into it.
   */
  private readonly spare: BatchBufferPool;
  private held = 0;
  private completions = 0;
  private taken = 0;
  private evicted = 0;
  private missed = 0;
  private readonly logger: Logger;

  constructor(private readonly opts: WriteBufferOptions) {
    if (!(Number.isSafeInteger(opts.maxBytes) && opts.maxBytes >= 0)) throw new RangeError(`write buffer: maxBytes must be a non-negative integer, got ${opts.maxBytes}`);
    this.logger = opts.logger ?? createLogger('flush.write-buffer');
    this.spare = new BatchBufferPool(Math.min(SPARE_BUFFER_BYTES, opts.maxBytes), SPARE_BUFFER_IDLE_MS);
  }

  /**
   * Takes back the batch buffers of a segment whose files are written (handed back by the flush
   * thread that wrote them), for the next segments. Nothing may use them any more.
   */
  recycle(buffers: readonly ArrayBuffer[]): void {
    for (const b of buffers) this.spare.give(b);
  }

  /** The part of the buffer that the recovery storage of `pchannel` at `term` feeds. */
  channel(pchannel: string, term: number): ChannelWriteBuffer {
    return new ChannelWriteBuffer(this, pchannel, term);
  }

  /**
   * The segment of `job`, complete (every entry its flush needs was fed), taken out of the buffer:
   * its SegmentRows encode the files. Undefined when the buffer cannot stand for the WAL range
   * (see the module comment): the job reads the range.
   */
  take(job: FlushJob): SegmentRows | undefined {
    const key = keyOf(job.pchannel, job.term, job.segmentId);
    const s = this.segments.get(key);
    if (s === undefined) return undefined;
    this.remove(key, s);
    if (!s.rows.complete || s.fromId !== job.fromId || s.rows.markerId !== job.toId || s.vchannel !== job.vchannel || s.collectionId !== job.collectionId || s.partitionId !== job.partitionId) {
      this.missed++;
      this.logger.debug('write buffer: segment not complete when its job came; it is read from the WAL', { pchannel: job.pchannel, segmentId: job.segmentId });
      return undefined;
    }
    this.taken++;
    return s.rows;
  }

  /** Drops the segment of `job` if held, unused (its job was fenced: a later owner reads the WAL). */
  discard(job: FlushJob): void {
    const key = keyOf(job.pchannel, job.term, job.segmentId);
    const s = this.segments.get(key);
    if (s !== undefined) this.remove(key, s);
  }

  /** @internal ChannelWriteBuffer: feeding a pchannel failed, its segments are dropped. */
  feedFailed(pchannel: string, error: unknown): void {
    this.missed++;
    this.logger.warn('write buffer: feeding a pchannel failed; its segments are flushed from the WAL from now on', { pchannel, error: toStreamingError(error).message });
  }

  get stats(): WriteBufferStats {
    return { segments: this.segments.size, heldBytes: this.held, taken: this.taken, evicted: this.evicted, missed: this.missed };
  }

  /** @internal ChannelWriteBuffer: starts encoding a segment (nothing when the buffer is off). */
  start(s: Omit<BufferedSegment, 'rows' | 'bytes' | 'completed'>, schema: CollectionSchema): BufferedSegment | undefined {
    if (this.opts.maxBytes === 0) return undefined;
    const b: BufferedSegment = { ...s, rows: new SegmentRows({ ...s, schema }, { root: this.opts.root, buffers: this.spare }), bytes: 0, completed: 0 };
    this.segments.set(keyOf(s.pchannel, s.term, s.segmentId), b);
    return b;
  }

  /** @internal ChannelWriteBuffer: `s` took every entry it needs. */
  completed(s: BufferedSegment): void {
    s.completed = ++this.completions;
  }

  /** @internal Counts what `s` holds now; drops segments while the buffer is over maxBytes. */
  recount(s: BufferedSegment): void {
    const now = s.rows.heldBytes;
    this.held += now - s.bytes;
    s.bytes = now;
    while (this.held > this.opts.maxBytes && this.segments.size > 0) {
      // A complete segment whose job has not taken it first, the one completed last (jobs run in
      // the order their segments completed: it waits longest); else the largest still growing.
      let victimEntry: [string, BufferedSegment] | undefined;
      for (const e of this.segments) if (e[1].completed > (victimEntry?.[1].completed ?? 0)) victimEntry = e;
      if (victimEntry === undefined) for (const e of this.segments) if (victimEntry === undefined || e[1].bytes > victimEntry[1].bytes) victimEntry = e;
      const [key, victim] = victimEntry!;
      this.remove(key, victim);
      this.evicted++;
      this.logger.info('write buffer full: a segment is dropped from it, its flush reads the WAL', { pchannel: victim.pchannel, segmentId: victim.segmentId, bytes: victim.bytes, maxBytes: this.opts.maxBytes });
    }
  }

  /** @internal Drops `s`; `error`: it failed to encode (counted as missed). */
  drop(s: BufferedSegment, error?: unknown): void {
    const key = keyOf(s.pchannel, s.term, s.segmentId);
    if (this.segments.get(key) !== s) return;
    this.remove(key, s);
    if (error === undefined) return;
    this.missed++;
    // Its flush reads the WAL and meets the same entry: the job fails with it.
    this.logger.warn('write buffer: a segment failed to encode; its flush reads the WAL', { pchannel: s.pchannel, segmentId: s.segmentId, error: toStreamingError(error).message });
  }

  private remove(key: string, s: BufferedSegment): void {
    this.segments.delete(key);
    this.held -= s.bytes;
    s.bytes = 0;
    s.channel.forget(s.segmentId);
  }
}

/**
 * The segments of one pchannel at one owner term in the write buffer, fed by its recovery storage
 * (recovery-actor.ts) with every persisted message, in log order.
 */
export class ChannelWriteBuffer {
  /** Segments of this pchannel still taking entries (not complete), by segment id. */
  private readonly filling = new Map<number, BufferedSegment>();
  /** Every segment of this pchannel in the buffer (filling or complete), by segment id. */
  private readonly held = new Map<number, BufferedSegment>();
  /** Feeding failed: nothing more is buffered for this pchannel at this term. */
  private broken = false;

  constructor(
    private readonly buffer: WriteBuffer,
    readonly pchannel: string,
    readonly term: number,
  ) {}

  /**
   * A message persisted at `m.id` as `bytes`. `sealed`: the segments whose flush marker it is (as
   * the recovery state just found them); `schemaOf`: the schema of a collection, for a
   * CreateSegment (undefined: an unknown collection, whose segment is not buffered).
   */
  persisted(m: LogMessage, bytes: Uint8Array, sealed: readonly { segmentId: number; flushId?: MessageId }[], schemaOf: (vchannel: string, collectionId: number) => CollectionSchema | undefined): void {
    if (this.broken) return;
    try {
      this.feed(m, bytes, sealed, schemaOf);
    } catch (e) {
      // Whatever it held may have missed this entry: it is dropped, and nothing more is buffered for this pchannel at this term.
      this.broken = true;
      this.close();
      this.buffer.feedFailed(this.pchannel, e);
    }
  }

  private feed(m: LogMessage, bytes: Uint8Array, sealed: readonly { segmentId: number; flushId?: MessageId }[], schemaOf: (vchannel: string, collectionId: number) => CollectionSchema | undefined): void {
    if (m.type === 'CreateSegment' && !this.held.has(m.header.segmentId)) {
      const schema = schemaOf(m.vchannel, m.header.collectionId);
      const s =
        schema === undefined
          ? undefined
          : this.buffer.start({ pchannel: this.pchannel, term: this.term, segmentId: m.header.segmentId, vchannel: m.vchannel, collectionId: m.header.collectionId, partitionId: m.header.partitionId, fromId: m.id, channel: this }, schema);
      if (s !== undefined) {
        this.filling.set(s.segmentId, s);
        this.held.set(s.segmentId, s);
      }
    }
    for (const r of sealed) {
      const s = this.filling.get(r.segmentId);
      if (s !== undefined && r.flushId !== undefined) s.rows.markerAt(r.flushId);
    }
    if (m.type === 'DropCollection' || m.type === 'DropPartition') {
      for (const s of [...this.held.values()]) {
        if (s.vchannel === m.vchannel && s.collectionId === m.header.collectionId && (m.type === 'DropCollection' || s.partitionId === m.header.partitionId)) this.drop(s.segmentId);
      }
    }
    if (this.filling.size === 0) return;
    const entry = { id: m.id, data: bytes, verified: true };
    for (const s of this.filling.values()) {
      // What SegmentRows skips unread anyway: another vchannel's message.
      if (m.vchannel !== '' && m.vchannel !== s.vchannel) continue;
      let more: boolean;
      try {
        more = s.rows.take(entry);
      } catch (e) {
        this.buffer.drop(s, e);
        continue;
      }
      if (!more) {
        this.filling.delete(s.segmentId);
        this.buffer.completed(s);
      }
      if (m.type !== 'TimeTick') this.buffer.recount(s); // rows, kept deletes or transaction bodies
    }
  }

  /** Drops a segment of this pchannel (flushed elsewhere, dropped, or its job was not queued). */
  drop(segmentId: number): void {
    const s = this.held.get(segmentId);
    if (s !== undefined) this.buffer.drop(s);
  }

  /** Drops every segment of this pchannel: its owner closes here (a later owner flushes from the WAL). */
  close(): void {
    for (const id of [...this.held.keys()]) this.drop(id);
  }

  /** Segments of this pchannel held now (filling or complete). */
  get size(): number {
    return this.held.size;
  }

  /** @internal WriteBuffer: the segment left the buffer. */
  forget(segmentId: number): void {
    this.filling.delete(segmentId);
    this.held.delete(segmentId);
  }
}
