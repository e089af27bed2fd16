/**
 * The write-ahead buffer (WAB): the in-memory tail of one pchannel, in timetick order — persisted
 * messages and TimeTicks (idle TimeTicks too, which exist only here). Readers that caught up tail
 * it instead of the backend. Bounded by bytes and age; never drops its last entry, so that a
 * catching-up reader can always meet it. Entries have dense offsets; a reader holds an offset.
 */
import type { Clock } from '../../runtime/clock';
import type { LogMessage } from '../../runtime/message/types';
import type { MessageId } from '../../runtime/message/message-id';
import type { Timetick } from '../../runtime/message/timetick';

interface Entry {
  msg: LogMessage;
  evictAt: number;
}

export class WriteAheadBuffer {
  private entries: Entry[] = [];
  /** Index into `entries` of the first live entry. */
  private head = 0;
  /** Offset of entries[head]. */
  private headOffset = 0;
  private bytes = 0;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly opts: { capacityBytes: number; keepaliveMs: number },
    private readonly clock: Clock,
  ) {}

  /** Offset of the oldest entry still held. */
  get firstOffset(): number {
    return this.headOffset;
  }

  /** Offset the next appended entry will get. */
  get nextOffset(): number {
    return this.headOffset + (this.entries.length - this.head);
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  get length(): number {
    return this.entries.length - this.head;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  first(): LogMessage | undefined {
    return this.entries[this.head]?.msg;
  }

  last(): LogMessage | undefined {
    return this.entries[this.entries.length - 1]?.msg;
  }

  /** Appends messages in strictly increasing timetick order (a violation is a bug: it throws). */
  append(msgs: readonly LogMessage[]): void {
    if (this.closed || msgs.length === 0) return;
    const evictAt = this.clock.monotonic() + this.opts.keepaliveMs;
    let lastTt = this.last()?.timetick ?? -1n;
    for (const msg of msgs) {
      if (msg.timetick <= lastTt) {
        throw new Error(`write-ahead buffer: timetick ${msg.timetick} not above ${lastTt}`);
      }
      lastTt = msg.timetick;
      this.entries.push({ msg, evictAt });
      this.bytes += msg.size;
    }
    this.evict();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Drops the oldest entries while over capacity or past their age; keeps the last one. */
  evict(): void {
    const now = this.clock.monotonic();
    const last = this.entries.length - 1;
    while (this.head < last) {
      const e = this.entries[this.head]!;
      if (this.bytes <= this.opts.capacityBytes && e.evictAt > now) break;
      this.bytes -= e.msg.size;
      this.entries[this.head] = undefined as unknown as Entry;
      this.head++;
      this.headOffset++;
    }
    if (this.head > 4096 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** The entry at `offset`; undefined when evicted (offset < firstOffset) or not yet written. */
  get(offset: number): LogMessage | undefined {
    if (offset < this.headOffset) return undefined;
    return this.entries[this.head + (offset - this.headOffset)]?.msg;
  }

  /** Resolves when an entry at `offset` exists, or the buffer closes. */
  waitFor(offset: number): Promise<void> {
    if (offset < this.nextOffset || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Where a reader continues in the buffer: at the message `id` itself when `inclusive`
   * (StartFrom), right after it otherwise (StartAfter, or after consuming it). Undefined when the
   * buffer does not cover that position (evicted, or older than this term).
   * Idle TimeTicks carry the id of the last persisted message before them.
   */
  offsetAfterId(id: MessageId, inclusive: boolean): number | undefined {
    const first = this.first();
    if (!first) return undefined;
    // Covered when nothing persisted between `id` and the buffer's head is missing.
    if (inclusive) {
      if (!(first.id < id || (first.id === id && !first.notPersisted))) return undefined;
    } else if (!(first.id <= id)) {
      return undefined;
    }
    // First entry that comes after position `id` (or at it, when inclusive).
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.entries[mid]!.msg;
      // Idle TimeTicks carrying `id` come after the message `id` itself.
      const before = inclusive ? e.id < id : e.id < id || (e.id === id && e.notPersisted !== true);
      if (before) lo = mid + 1;
      else hi = mid;
    }
    return this.headOffset + (lo - this.head);
  }

  /** Offset of the first entry with timetick > tt, or undefined when the buffer does not reach back to tt. */
  offsetAfterTimetick(tt: Timetick): number | undefined {
    const first = this.first();
    if (!first || first.timetick > tt) return undefined;
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid]!.msg.timetick <= tt) lo = mid + 1;
      else hi = mid;
    }
    return this.headOffset + (lo - this.head);
  }

  close(): void {
    this.closed = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
