/**
 * What one LocalWalBackend instance knows about one pchannel: the in-process half of the fence
 * (the newest epoch opened through this instance, so that an older handle's check is a number
 * compare), the live writer (whose durable position bounds in-process readers) and the change
 * notifications that wake those readers. Lives as long as the backend instance.
 */
import { TermStore } from './term-store';

/** The part of a writer that readers and the open path look at. */
export interface WriterView {
  readonly epoch: number;
  /** Sequence number after the last acknowledged (durable under the policy) record. */
  readonly durableNext: number;
  /** Not closed, not broken, not known to be fenced. */
  isLive(): boolean;
  /** Records that a newer rw open exists (found by a reader's check). */
  markFenced(): void;
}

export class ChannelState {
  readonly terms: TermStore;
  /** Newest epoch claimed through this instance (0: none). A handle of another epoch is fenced. */
  latestEpoch = 0;
  /** Term of that epoch. */
  latestTerm: number | undefined;
  /** The rw handle of `latestEpoch`, once its open completed. */
  writer: WriterView | undefined;
  /**
   * Writes undone by the writers of this instance so far (a failed write is truncated away and the
   * next one goes to the same offset, with the same sequence numbers): a reader that holds bytes
   * read before an undo reads them again. Kept here, not on the writer: it counts after the writer
   * is broken or closed.
   */
  undoneWrites = 0;
  private listeners = new Set<() => void>();
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    readonly pchannel: string,
    readonly dir: string,
  ) {
    this.terms = new TermStore(dir);
  }

  /** Wakes everything waiting for a change (new durable records, rollover, open, close). */
  notify(): void {
    if (this.listeners.size === 0) return;
    const ls = [...this.listeners];
    this.listeners.clear();
    for (const l of ls) l();
  }

  /** Calls `fn` once on the next notify(); returns an unsubscribe. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Runs opens of this pchannel one at a time within this instance. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }
}
