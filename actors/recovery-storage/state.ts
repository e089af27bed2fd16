/**
 * Recovery state of one pchannel (pure): vchannel meta, segment meta and the checkpoint, kept
 * current by observing every persisted message, with dirty tracking for persistence. The
 * checkpoint (id, timetick) says: every message with timetick ≤ it is reflected in this state;
 * recovery replays from its id and skips what is at or below its timetick.
 */
import type { MessageId } from '../../runtime/message/message-id';
import type { LogMessage } from '../../runtime/message/types';
import { VChannelMeta } from '../wal/vchannel-meta';

export interface Checkpoint {
  id: MessageId;
  /** Decimal string of the timetick. */
  timetick: string;
  /**
   * Where the idempotency window starts: recovery reads from here (not only from `id`) to rebuild
   * the keys of the last appends, so a retry that reaches the next owner is not written twice.
   * '' = the start of the log.
   */
  windowFrom?: MessageId;
}

/** Messages between two marks of the idempotency window's start. */
const WINDOW_MARK_EVERY = 1024;

export interface SegmentRecord {
  segmentId: number;
  vchannel: string;
  collectionId: number;
  partitionId: number;
  /** growing → sealed (its flush marker is written) → flushed (its files are committed); dropped with its collection/partition. */
  state: 'growing' | 'sealed' | 'flushed' | 'dropped';
  rows: number;
  bytes: number;
  maxRows: number;
  maxBytes: number;
  createId: MessageId;
  createTimetick: string;
  flushId?: MessageId;
  flushTimetick?: string;
  /**
   * Timetick (decimal) of the last Insert counted in `rows`/`bytes`. The record can be persisted
   * with a newer state than the checkpoint (metadata first, checkpoint after: a crash in between),
   * so a replay from the checkpoint meets inserts it already counted: those are not counted again.
   * Absent in records written before it existed (then every replayed insert counts).
   */
  insertTimetick?: string;
}

/** What observe() returns for a message that sealed nothing (shared: never modified). */
const NONE_SEALED: SegmentRecord[] = [];

export class RecoveryState {
  readonly vchannels = new VChannelMeta();
  readonly segments = new Map<number, SegmentRecord>();
  private cpId: MessageId | undefined;
  private cpTt = 0n;
  private windowFrom: MessageId = '';
  private observed = 0;
  private readonly marks: { at: number; id: MessageId }[] = [];

  /** @param windowMessages how many recent messages' idempotency keys recovery must rebuild. */
  constructor(private readonly windowMessages = 65_536) {}
  /** Checkpoint as last persisted. */
  persistedCheckpoint: Checkpoint | undefined;
  readonly dirtyVChannels = new Set<string>();
  readonly dirtySegments = new Set<number>();
  dirtyMessages = 0;

  /** Every message with timetick ≤ checkpoint.timetick is reflected in this state; replay from checkpoint.id. */
  get checkpoint(): Checkpoint | undefined {
    return this.cpId === undefined ? undefined : { id: this.cpId, timetick: this.cpTt.toString(), windowFrom: this.windowFrom };
  }

  set checkpoint(cp: Checkpoint | undefined) {
    this.cpId = cp?.id;
    this.cpTt = cp ? BigInt(cp.timetick) : 0n;
    this.windowFrom = cp?.windowFrom ?? '';
  }

  /** Moves the window's start forward as messages go by (it trails by at least `windowMessages`). */
  private advanceWindow(id: MessageId): void {
    this.observed++;
    if (this.observed % WINDOW_MARK_EVERY === 0) this.marks.push({ at: this.observed, id });
    while (this.marks.length > 0 && this.marks[0]!.at <= this.observed - this.windowMessages) {
      this.windowFrom = this.marks.shift()!.id;
    }
  }

  /** Applies one persisted message; returns segments that just got their flush marker. */
  observe(m: LogMessage): readonly SegmentRecord[] {
    let sealed: SegmentRecord[] = NONE_SEALED;
    switch (m.type) {
      case 'CreateCollection':
      case 'CreatePartition':
        this.vchannels.apply(m);
        this.dirtyVChannels.add(m.vchannel);
        break;
      case 'DropCollection':
      case 'DropPartition':
        this.vchannels.apply(m);
        this.dirtyVChannels.add(m.vchannel);
        for (const s of this.segments.values()) {
          if (s.vchannel !== m.vchannel || s.collectionId !== m.header.collectionId) continue;
          if (m.type === 'DropPartition' && s.partitionId !== m.header.partitionId) continue;
          if (s.state === 'flushed') continue;
          s.state = 'dropped';
          this.dirtySegments.add(s.segmentId);
        }
        break;
      case 'CreateSegment':
        if (!this.segments.has(m.header.segmentId)) {
          this.segments.set(m.header.segmentId, {
            segmentId: m.header.segmentId,
            vchannel: m.vchannel,
            collectionId: m.header.collectionId,
            partitionId: m.header.partitionId,
            state: 'growing',
            rows: 0,
            bytes: 0,
            maxRows: m.header.maxRows,
            maxBytes: m.header.maxBytes,
            createId: m.id,
            createTimetick: m.timetick.toString(),
          });
          this.dirtySegments.add(m.header.segmentId);
        }
        break;
      case 'Insert': {
        const s = this.segments.get(m.header.segmentId);
        if (s && s.state === 'growing' && (s.insertTimetick === undefined || m.timetick > BigInt(s.insertTimetick))) {
          s.rows += m.header.rows;
          s.bytes += m.header.bytes;
          s.insertTimetick = m.timetick.toString();
          this.dirtySegments.add(s.segmentId);
        }
        break;
      }
      case 'Flush':
        sealed = [];
        this.markSealed(m.header.segmentId, m, sealed);
        break;
      case 'ManualFlush':
        sealed = [];
        for (const id of m.header.segmentIds) this.markSealed(id, m, sealed);
        break;
      default:
        break;
    }
    this.cpId = m.lastConfirmedId === '' ? m.id : m.lastConfirmedId;
    this.cpTt = m.timetick;
    this.advanceWindow(this.cpId);
    this.dirtyMessages++;
    return sealed;
  }

  private markSealed(segmentId: number, m: LogMessage, out: SegmentRecord[]): void {
    const s = this.segments.get(segmentId);
    if (!s || s.state !== 'growing') return;
    s.state = 'sealed';
    s.flushId = m.id;
    s.flushTimetick = m.timetick.toString();
    this.dirtySegments.add(segmentId);
    out.push(s);
  }

  /** The flush worker committed the segment. */
  markFlushed(segmentId: number): void {
    const s = this.segments.get(segmentId);
    if (!s || s.state === 'flushed') return;
    s.state = 'flushed';
    this.dirtySegments.add(segmentId);
  }

  /** Segments sealed but not yet flushed: their flush jobs must exist. */
  pendingFlush(): SegmentRecord[] {
    return [...this.segments.values()].filter((s) => s.state === 'sealed' && s.flushId !== undefined);
  }

  /**
   * Where the WAL may be truncated: below the persisted checkpoint and below the first position
   * of every segment not yet flushed (its rows are still only in the WAL).
   */
  truncationPoint(): MessageId | undefined {
    const cp = this.persistedCheckpoint;
    if (!cp) return undefined;
    let point = cp.windowFrom !== undefined && cp.windowFrom < cp.id ? cp.windowFrom : cp.id;
    if (point === '') return undefined;
    for (const s of this.segments.values()) {
      if ((s.state === 'growing' || s.state === 'sealed') && s.createId < point) point = s.createId;
    }
    return point;
  }
}
