/**
 * Supervision as a small pure function of the error, plus the crash-loop window.
 * - retriable (I/O hiccup, shutdown race, exhaustion) → reset: reopen, with backoff;
 * - fenced or unrecoverable → stop, and the owner gives the pchannel up to the coordinator;
 * - anything unknown (a bug) → escalate.
 * A WAL that needs resetting too often (maxRestarts in windowMs) is stopped too: supervisor
 * restarts drive reassignment.
 */
import { ErrorCode, StreamingError } from './errors';

export type Verdict = 'reset' | 'stop' | 'escalate';

export function decide(error: unknown): Verdict {
  if (!(error instanceof StreamingError)) return 'escalate';
  switch (error.code) {
    case ErrorCode.CHANNEL_FENCED:
    case ErrorCode.UNRECOVERABLE:
    case ErrorCode.INVALID_ARGUMENT:
      return 'stop';
    case ErrorCode.UNKNOWN:
      return 'escalate';
    default:
      return error.retriable ? 'reset' : 'stop';
  }
}

export interface RestartPolicy {
  /** Restarts allowed within `windowMs` before giving up. Default 3. */
  maxRestarts: number;
  /** Default 30000 ms. */
  windowMs: number;
  /** Backoff before the first restart; doubles per restart in the window. Default 50 ms. */
  backoffMs: number;
  /** Default 2000 ms. */
  maxBackoffMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { maxRestarts: 3, windowMs: 30_000, backoffMs: 50, maxBackoffMs: 2_000 };

/** Crash times of one supervised child, to tell a hiccup from a crash loop. */
export class CrashWindow {
  private readonly crashes: number[] = [];
  constructor(private readonly policy: RestartPolicy) {}

  /** Records a crash at `now`; returns the backoff before restarting, or undefined to give up. */
  record(now: number): number | undefined {
    this.crashes.push(now);
    while (this.crashes.length > 0 && this.crashes[0]! <= now - this.policy.windowMs) this.crashes.shift();
    const n = this.crashes.length;
    if (n > this.policy.maxRestarts) return undefined;
    return Math.min(this.policy.maxBackoffMs, this.policy.backoffMs * 2 ** (n - 1));
  }

  get count(): number {
    return this.crashes.length;
  }
}
