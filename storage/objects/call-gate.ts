/**
 * Intake control shared by the stores' `close()`: calls run through the gate; once it is shut, new
 * calls reject with ON_SHUTDOWN and `shut()` waits (up to a deadline) for the calls in flight.
 */
import type { Clock } from '../../runtime/clock';
import { storeClosed } from './errors';

export class CallGate {
  private readonly inflight = new Set<Promise<unknown>>();
  private shutFlag = false;

  constructor(private readonly store: string) {}

  get isShut(): boolean {
    return this.shutFlag;
  }

  /** Throws ON_SHUTDOWN when shut (for steps inside a long call, e.g. between list pages). */
  check(): void {
    if (this.shutFlag) throw storeClosed(this.store);
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.shutFlag) return Promise.reject(storeClosed(this.store));
    const p = fn();
    const tracked = p.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.add(tracked);
    void tracked.then(() => this.inflight.delete(tracked));
    return p;
  }

  /** Stops intake; resolves true when every call in flight settled within `deadlineMs`, false otherwise. */
  async shut(clock: Clock, deadlineMs: number): Promise<boolean> {
    this.shutFlag = true;
    if (this.inflight.size === 0) return true;
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = clock.setTimeout(() => resolve(false), deadlineMs);
    });
    const drained = Promise.all([...this.inflight]).then(() => true as const);
    try {
      return await Promise.race([drained, timeout]);
    } finally {
      timer?.cancel();
    }
  }
}
