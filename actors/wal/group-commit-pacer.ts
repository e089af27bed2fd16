/**
 * Whether the WAL overlaps the appenders' work with writing. With two groups in flight the
 * appenders of the first are answered, and their next appends made and encoded, while the second
 * is written; a backend that coalesces syncs (the local one) writes a group behind the sync in
 * flight and makes it durable with the next. That pays while a write takes less time than the
 * main thread spends on a wave of appends; on a slower disk (or a remote backend) one group per
 * write carries more, since the backend writes one group after the other. So: overlap — split a
 * burst that finds the pipe empty, hand the next group on as soon as one completes — or merge —
 * let the appenders just answered join the pending group first. Both costs are measured as the
 * WAL runs (medians of the last observations, so that an odd slow fsync or garbage collection does
 * not flip the choice); until they are known, merge.
 *
 * With a backend that coalesces syncs, overlapping pays while a sync (T) takes less than the
 * wave's work (B) plus the write(2) of a group (W), which overlapping hides behind the sync in
 * flight: T < B + W. What the pacer measures as a write is W + T while merging and, while
 * overlapping, the period between two completions: T (when the main thread is the limit, a group
 * starts after the previous one finished and W + T is measured, well under 1.5·B there). W is not
 * seen on its own; it is taken as a quarter of a merged write (W_SHARE), i.e. a
 * third of a sync, so: merging, overlap once write < 2·B; overlapping, go on while write < 1.5·B —
 * the same condition on T either way, so a steady disk does not make the choice flap. After a
 * switch the choice holds for a window of writes, so that the medians describe the new way of
 * writing first.
 *
 * The main thread's time per append is its busy time (event-loop utilization: the callers' side,
 * the chain, encoding, answers, garbage collection, and whatever else shares the thread) between
 * two completions, divided by the appends they answered. The choice is made once per completion
 * (one or more groups answered).
 */

/** A group commit is split in two only when each half would carry at least this many appends. */
export const MIN_SPLIT_GROUP = 8;

/** Observations each median is taken over. */
const WINDOW = 15;

/** The part of a merged write (W + T) taken to be its write(2), W (see above). */
const W_SHARE = 0.25;
/** Merging (write = W + T, W = W_SHARE·write): T < B + W  ⇔  write < B / (1 − 2·W_SHARE). */
const MERGING_FACTOR = 1 / (1 - 2 * W_SHARE);
/** Overlapping (write = T, W = T·W_SHARE / (1 − W_SHARE)): T < B + W  ⇔  write < B·(1 − W_SHARE) / (1 − 2·W_SHARE). */
const OVERLAPPING_FACTOR = (1 - W_SHARE) / (1 - 2 * W_SHARE);

export class GroupCommitPacer {
  /** Main-thread time per append, in ms. */
  private readonly busyMsPerAppend = new MovingMedian(WINDOW);
  /** Time the backend takes to write one group, its queueing behind the previous one excluded, in ms. */
  private readonly writeMs = new MovingMedian(WINDOW);
  private lastWriteDoneAt = 0;
  /** The last choice of decide(). */
  private overlapping = false;
  /** Writes observed since the choice last changed. */
  private sinceSwitch = WINDOW;

  /** The main thread was busy for `ms` while `appends` appends went through (from call to answer). */
  observeBusy(appends: number, ms: number): void {
    if (appends <= 0 || !(ms >= 0)) return;
    this.busyMsPerAppend.add(ms / appends);
  }

  /** A group handed over at `startedAt` was durable at `doneAt` (same time base as performance.now()). */
  observeWrite(startedAt: number, doneAt: number): void {
    const service = doneAt - Math.max(startedAt, this.lastWriteDoneAt);
    this.lastWriteDoneAt = doneAt;
    if (service >= 0) this.writeMs.add(service);
    this.sinceSwitch++;
  }

  /**
   * Chooses, once a group completed, for a wave of `appends` (every appender in the cycle): true
   * while overlapping is measured to pay (see above). The choice holds until the next decision.
   */
  decide(appends: number): boolean {
    const writeMs = this.writeMs.value;
    const busyMs = this.busyMsPerAppend.value;
    if (!(writeMs > 0 && busyMs > 0) || this.sinceSwitch < WINDOW) return this.overlapping;
    const overlap = writeMs < busyMs * appends * (this.overlapping ? OVERLAPPING_FACTOR : MERGING_FACTOR);
    if (overlap !== this.overlapping) {
      this.overlapping = overlap;
      this.sinceSwitch = 0;
    }
    return overlap;
  }

  /** The current choice (merge until the first decision). */
  get overlap(): boolean {
    return this.overlapping;
  }

  /** Most appends in the first group when `pending` wait, no write is in flight and `freeSlots` writes may start. */
  firstGroupLimit(pending: number, freeSlots: number): number {
    if (freeSlots < 2 || pending < 2 * MIN_SPLIT_GROUP) return pending;
    return this.overlapping ? Math.ceil(pending / 2) : pending;
  }

  /** For status and logs. */
  snapshot(): { busyUsPerAppend: number; writeMs: number } {
    return { busyUsPerAppend: Math.round(this.busyMsPerAppend.value * 1000 * 10) / 10, writeMs: Math.round(this.writeMs.value * 1000) / 1000 };
  }
}

/** The median of the last `size` numbers added (0 before the first); recomputed on add. */
class MovingMedian {
  private readonly ring: number[] = [];
  private next = 0;
  private median = 0;

  constructor(private readonly size: number) {}

  get value(): number {
    return this.median;
  }

  add(x: number): void {
    if (this.ring.length < this.size) this.ring.push(x);
    else this.ring[this.next] = x;
    this.next = (this.next + 1) % this.size;
    const sorted = [...this.ring].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    this.median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  }
}
