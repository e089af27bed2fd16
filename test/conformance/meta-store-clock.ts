/**
 * A Clock the test drives: `advance(ms)` moves wall and monotonic time and runs every timer that
 * falls due, in deadline order, each at its own instant. Nothing happens on its own.
 */
import type { Clock, TimerHandle } from '../../runtime/clock';

interface Timer {
  at: number;
  readonly every: number | undefined;
  readonly fn: () => void;
}

export class ManualClock implements Clock {
  private mono = 0;
  private seq = 0;
  private readonly timers = new Map<number, Timer>();

  constructor(private readonly wallStart = 1_767_225_600_000 /* 2026-01-01T00:00:00Z */) {}

  now(): number {
    return this.wallStart + this.mono;
  }

  monotonic(): number {
    return this.mono;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, undefined);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, Math.max(1, ms));
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** Number of pending timers (for assertions). */
  get pendingTimers(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const target = this.mono + ms;
    for (;;) {
      let nextId: number | undefined;
      let next: Timer | undefined;
      for (const [id, t] of this.timers) if (t.at <= target && (!next || t.at < next.at)) [nextId, next] = [id, t];
      if (!next || nextId === undefined) break;
      this.mono = Math.max(this.mono, next.at);
      if (next.every === undefined) this.timers.delete(nextId);
      else next.at += next.every;
      next.fn();
    }
    this.mono = target;
  }

  private add(fn: () => void, ms: number, every: number | undefined): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.mono + Math.max(0, ms), every, fn });
    return { cancel: () => void this.timers.delete(id) };
  }
}
