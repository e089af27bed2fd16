/**
 * Whether the WAL overlaps encoding with writing. With two groups in flight the appenders of the
 * first are answered, and their next appends encoded, while the second is written. That pays
 * only while a write takes less time than encoding a wave of appends; on a slower disk (or a
 * remote backend) one group per write carries more, since the backend writes one group after the
 * other. So: overlap — split a burst that finds the pipe empty, hand the next group on as soon as
 * one completes — or merge — let the appenders just answered join the pending group first. Both
 * costs are measured as the WAL runs (moving averages); until they are known, merge.
 */

/** A group commit is split in two only when each half would carry at least this many appends. */
export const MIN_SPLIT_GROUP = 8;

/** Weight of a new observation in the moving averages. */
const ALPHA = 0.2;

export class GroupCommitPacer {
  /** Time to run one append through the interceptors up to the write pipe, in ms. */
  private encodeMsPerAppend = 0;
  /** Time the backend takes to write one group, its queueing behind the previous one excluded, in ms. */
  private writeMs = 0;
  private lastWriteDoneAt = 0;

  /** `appends` went through the chain in `ms` of one actor turn. */
  observeEncoding(appends: number, ms: number): void {
    if (appends <= 0) return;
    this.encodeMsPerAppend = ewma(this.encodeMsPerAppend, ms / appends);
  }

  /** A group handed over at `startedAt` was durable at `doneAt` (same time base as performance.now()). */
  observeWrite(startedAt: number, doneAt: number): void {
    const service = doneAt - Math.max(startedAt, this.lastWriteDoneAt);
    this.lastWriteDoneAt = doneAt;
    if (service >= 0) this.writeMs = ewma(this.writeMs, service);
  }

  /** True while writing a group is measured faster than encoding a wave of `appends`. */
  shouldOverlap(appends: number): boolean {
    if (!(this.writeMs > 0 && this.encodeMsPerAppend > 0)) return false;
    return this.writeMs < this.encodeMsPerAppend * appends;
  }

  /** Most appends in the first group when `pending` wait, no write is in flight and `freeSlots` writes may start. */
  firstGroupLimit(pending: number, freeSlots: number): number {
    if (freeSlots < 2 || pending < 2 * MIN_SPLIT_GROUP) return pending;
    return this.shouldOverlap(pending) ? Math.ceil(pending / 2) : pending;
  }

  /** For status and logs. */
  snapshot(): { encodeUsPerAppend: number; writeMs: number } {
    return { encodeUsPerAppend: Math.round(this.encodeMsPerAppend * 1000 * 10) / 10, writeMs: Math.round(this.writeMs * 1000) / 1000 };
  }
}

function ewma(avg: number, x: number): number {
  return avg === 0 ? x : avg + ALPHA * (x - avg);
}
