/**
 * The idempotency window of one pchannel: the results of the most recent appends that carried an
 * idempotency key. A retried append with a remembered key gets the first result instead of being
 * written again; one that arrives while the first is still in flight shares its outcome. Rebuilt on
 * open from the log, so a retry that reaches the pchannel's next owner is deduplicated too.
 */
import type { AppendResult } from './interceptors/interceptor';

export class IdempotencyWindow {
  private readonly done = new Map<string, AppendResult>();
  private readonly inFlight = new Map<string, Promise<AppendResult>>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.done.size;
  }

  /** The remembered result, or the in-flight append with the same key. */
  lookup(key: string): AppendResult | Promise<AppendResult> | undefined {
    return this.done.get(key) ?? this.inFlight.get(key);
  }

  /** Tracks an append; remembers its result when it succeeds, forgets the key when it fails. */
  track(key: string, append: Promise<AppendResult>): Promise<AppendResult> {
    this.inFlight.set(key, append);
    append.then(
      (r) => {
        this.inFlight.delete(key);
        this.remember(key, r);
      },
      () => this.inFlight.delete(key),
    );
    return append;
  }

  remember(key: string, result: AppendResult): void {
    this.done.delete(key);
    this.done.set(key, result);
    if (this.done.size > this.capacity) {
      const oldest = this.done.keys().next();
      if (!oldest.done) this.done.delete(oldest.value);
    }
  }
}
