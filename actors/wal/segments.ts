/**
 * Growing segments of one pchannel (pure state, driven by the shard interceptor): every insert
 * goes to a growing segment of its (vchannel, collection, partition); when none has room a new one
 * is created by the WAL writing a CreateSegment message; seal policies decide when a segment stops
 * growing, and a sealed segment gets a Flush message (or is named by a ManualFlush).
 *
 * Seal policies: capacity (rows, bytes), idle time, lifetime, memory high-water mark of the node
 * (seal the largest until under the low-water mark), manual flush, collection/partition drop.
 */
import { unrecoverable } from '../../runtime/errors';
import type { MessageId } from '../../runtime/message/message-id';
import type { Timetick } from '../../runtime/message/timetick';

export interface SegmentLimits {
  /** Rows after which a segment is sealed. */
  maxRows: number;
  /** Insert bytes after which a segment is sealed. */
  maxBytes: number;
  /** A segment that received nothing for this long is sealed (if it has rows). */
  maxIdleMs: number;
  /** A segment older than this is sealed. */
  maxLifetimeMs: number;
}

export const DEFAULT_SEGMENT_LIMITS: SegmentLimits = { maxRows: 1_000_000, maxBytes: 128 * 1024 * 1024, maxIdleMs: 600_000, maxLifetimeMs: 3_600_000 };

/** Growing bytes of every WAL of a node, for the memory seal policy (shared by the WALs of a node). */
export class MemoryBudget {
  private total = 0;
  constructor(
    /** Above this, the largest growing segments are sealed … */
    readonly highWaterBytes: number,
    /** … until the total is below this. */
    readonly lowWaterBytes: number,
  ) {}
  add(delta: number): void {
    this.total += delta;
  }
  get bytes(): number {
    return this.total;
  }
}

export type SegmentState = 'growing' | 'sealed';
export type SealReason = 'capacity' | 'idle' | 'lifetime' | 'memory' | 'manual' | 'recover';

export interface Segment {
  readonly segmentId: number;
  readonly vchannel: string;
  readonly collectionId: number;
  readonly partitionId: number;
  state: SegmentState;
  rows: number;
  bytes: number;
  readonly maxRows: number;
  readonly maxBytes: number;
  /** Position of its CreateSegment message: its data is at or after it. */
  readonly createId: MessageId;
  readonly createTimetick: Timetick;
  /** Monotonic ms. */
  readonly createdAt: number;
  lastModified: number;
  /** A Flush message for it is being written. */
  flushRequested?: boolean;
}

/** Where an insert went: its segment, and the position of its first row there (for generated keys). */
export type AssignResult = { segmentId: number; firstRow: number } | { needSegment: true };

/** `sealed` of an assignment that sealed nothing (shared: never modified). */
const NONE_SEALED: Segment[] = [];

export class SegmentManager {
  private readonly segments = new Map<number, Segment>();
  /** Segments of each (vchannel, collection, partition), oldest first: looked up at every insert. */
  private readonly byPartition = new Map<string, Map<number, Map<number, Segment[]>>>();

  constructor(
    readonly limits: SegmentLimits,
    private readonly budget: MemoryBudget,
  ) {}

  get(segmentId: number): Segment | undefined {
    return this.segments.get(segmentId);
  }

  all(): Segment[] {
    return [...this.segments.values()];
  }

  growing(): Segment[] {
    return this.all().filter((s) => s.state === 'growing');
  }

  /**
   * Picks a growing segment with room for `rows`/`bytes`. Segments that cannot take it are sealed
   * (reported in `sealed`); when none is left the caller must create one. A batch larger than an
   * empty segment is UNRECOVERABLE.
   */
  assign(vchannel: string, collectionId: number, partitionId: number, rows: number, bytes: number, now: number): AssignResult & { sealed: Segment[] } {
    if (rows > this.limits.maxRows || bytes > this.limits.maxBytes) {
      throw unrecoverable(`insert of ${rows} rows / ${bytes} bytes is larger than a segment (${this.limits.maxRows} rows / ${this.limits.maxBytes} bytes)`, {
        rows,
        bytes,
        maxRows: this.limits.maxRows,
        maxBytes: this.limits.maxBytes,
      });
    }
    let sealed = NONE_SEALED;
    const list = this.byPartition.get(vchannel)?.get(collectionId)?.get(partitionId);
    for (let i = 0; list !== undefined && i < list.length; i++) {
      const s = list[i]!;
      if (s.state !== 'growing') continue;
      if (s.rows + rows <= s.maxRows && s.bytes + bytes <= s.maxBytes) {
        const firstRow = s.rows;
        s.rows += rows;
        s.bytes += bytes;
        s.lastModified = now;
        this.budget.add(bytes);
        if (s.rows >= s.maxRows || s.bytes >= s.maxBytes) {
          s.state = 'sealed';
          sealed = sealed === NONE_SEALED ? [s] : [...sealed, s];
        }
        return { segmentId: s.segmentId, firstRow, sealed };
      }
      s.state = 'sealed';
      sealed = sealed === NONE_SEALED ? [s] : [...sealed, s];
    }
    return { needSegment: true, sealed };
  }

  /** A CreateSegment was written: the segment is growing from now on. */
  created(seg: Omit<Segment, 'state' | 'rows' | 'bytes' | 'lastModified'>): Segment {
    const s: Segment = { ...seg, state: 'growing', rows: 0, bytes: 0, lastModified: seg.createdAt };
    if (this.segments.has(s.segmentId)) this.remove(s.segmentId);
    this.segments.set(s.segmentId, s);
    let collections = this.byPartition.get(s.vchannel);
    if (!collections) this.byPartition.set(s.vchannel, (collections = new Map()));
    let partitions = collections.get(s.collectionId);
    if (!partitions) collections.set(s.collectionId, (partitions = new Map()));
    const list = partitions.get(s.partitionId);
    if (list) list.push(s);
    else partitions.set(s.partitionId, [s]);
    return s;
  }

  /** Replay: rows of an insert already assigned to `segmentId`. */
  observeInsert(segmentId: number, rows: number, bytes: number, now: number): void {
    const s = this.segments.get(segmentId);
    if (!s) return;
    s.rows += rows;
    s.bytes += bytes;
    s.lastModified = now;
    this.budget.add(bytes);
  }

  seal(segmentId: number): Segment | undefined {
    const s = this.segments.get(segmentId);
    if (!s || s.state !== 'growing') return undefined;
    s.state = 'sealed';
    return s;
  }

  /** Its Flush (or ManualFlush) was written: it leaves the manager (the flusher takes it from here). */
  flushed(segmentId: number): Segment | undefined {
    return this.remove(segmentId);
  }

  /** Seals every growing segment of a collection on a vchannel (ManualFlush); returns their ids. */
  sealCollection(vchannel: string, collectionId: number): number[] {
    const ids: number[] = [];
    for (const s of this.segments.values()) {
      if (s.vchannel === vchannel && s.collectionId === collectionId && !s.flushRequested) {
        s.state = 'sealed';
        ids.push(s.segmentId);
      }
    }
    return ids.sort((a, b) => a - b);
  }

  /** Drops the segments of a collection (partitionId undefined) or of one partition. */
  drop(vchannel: string, collectionId: number, partitionId?: number): Segment[] {
    const out: Segment[] = [];
    for (const s of [...this.segments.values()]) {
      if (s.vchannel === vchannel && s.collectionId === collectionId && (partitionId === undefined || s.partitionId === partitionId)) {
        this.remove(s.segmentId);
        out.push(s);
      }
    }
    return out;
  }

  private remove(segmentId: number): Segment | undefined {
    const s = this.segments.get(segmentId);
    if (!s) return undefined;
    this.segments.delete(segmentId);
    this.budget.add(-s.bytes);
    const collections = this.byPartition.get(s.vchannel);
    const partitions = collections?.get(s.collectionId);
    const list = partitions?.get(s.partitionId);
    if (list) {
      const i = list.indexOf(s);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) partitions!.delete(s.partitionId);
      if (partitions!.size === 0) collections!.delete(s.collectionId);
      if (collections!.size === 0) this.byPartition.delete(s.vchannel);
    }
    return s;
  }

  /** Growing segments that a time or memory policy says to seal now. */
  dueForSeal(now: number): { segment: Segment; reason: SealReason }[] {
    const out: { segment: Segment; reason: SealReason }[] = [];
    const growing = this.growing();
    for (const s of growing) {
      if (now - s.createdAt >= this.limits.maxLifetimeMs) out.push({ segment: s, reason: 'lifetime' });
      else if (s.rows > 0 && now - s.lastModified >= this.limits.maxIdleMs) out.push({ segment: s, reason: 'idle' });
    }
    if (this.budget.bytes > this.budget.highWaterBytes) {
      let total = this.budget.bytes;
      const chosen = new Set(out.map((x) => x.segment.segmentId));
      for (const s of growing.filter((x) => !chosen.has(x.segmentId)).sort((a, b) => b.bytes - a.bytes)) {
        if (total <= this.budget.lowWaterBytes) break;
        out.push({ segment: s, reason: 'memory' });
        total -= s.bytes;
      }
    }
    return out;
  }
}
