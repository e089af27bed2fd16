/**
 * One retry helper, in the style of KafkaJS (`src/retry/`): `createRetry(opts)(async (bail, attempt) => …)`.
 * Exponential backoff with jitter; time and randomness come from the injected Clock and Random.
 *
 * Unlike KafkaJS, unknown errors are NOT retried by default: only errors for which `isRetriable`
 * answers true (default: a StreamingError with `retriable`). `bail(e)` ends the loop at once with `e`.
 * When the retries run out, the loop rejects with RetriesExceededError, which keeps the last error as
 * `cause`, copies its code and is itself not retriable (an outer retry loop must not multiply it).
 */
import { type Clock, type Random, systemClock, systemRandom } from './clock';
import { ErrorCode, StreamingError, isRetriable as isRetriableStreamingError } from './errors';

export interface RetryOptions {
  /** Retries after the first attempt (so at most `retries + 1` attempts). Default 5. */
  retries?: number;
  /** Delay before the first retry, in ms. Default 300. */
  initialRetryTimeMs?: number;
  /** Each following delay is the previous one times this. Default 2. */
  multiplier?: number;
  /** Jitter: each delay is spread uniformly by ± this fraction. Default 0.2. */
  factor?: number;
  /** Upper bound of one delay, in ms (before jitter). Default 30 000. */
  maxRetryTimeMs?: number;
  /** Which errors are retried. Default: StreamingError with `retriable` true; anything else fails at once. */
  isRetriable?: (error: unknown) => boolean;
  /** Called before each wait, e.g. to log or count (tests await these instead of sleeping). */
  onRetry?: (info: RetryInfo) => void;
  /** Aborting stops the waiting: the loop rejects with ON_SHUTDOWN (cause: the last error). */
  signal?: AbortSignal;
  /** Default systemClock. */
  clock?: Clock;
  /** Default systemRandom. */
  random?: Random;
}

export interface RetryInfo {
  error: unknown;
  /** The attempt that failed, from 1. */
  attempt: number;
  /** How long the helper waits before the next attempt. */
  delayMs: number;
}

/** `bail(e)` stops retrying and rejects the whole call with `e` as it is. */
export type Bail = (error: unknown) => never;
export type Retry = <T>(fn: (bail: Bail, attempt: number) => Promise<T>) => Promise<T>;

/** All attempts failed with retriable errors. Not retriable itself; `cause` is the last error. */
export class RetriesExceededError extends StreamingError {
  readonly attempts: number;
  constructor(attempts: number, last: unknown) {
    const code = last instanceof StreamingError ? last.code : ErrorCode.UNKNOWN;
    const reason = last instanceof Error ? last.message : String(last);
    super(code, `gave up after ${attempts} attempts: ${reason}`, { cause: last, retriable: false, details: { attempts } });
    this.name = 'RetriesExceededError';
    this.attempts = attempts;
  }
}

class Bailed {
  constructor(readonly error: unknown) {}
}

const DEFAULTS = {
  retries: 5,
  initialRetryTimeMs: 300,
  multiplier: 2,
  factor: 0.2,
  maxRetryTimeMs: 30_000,
};

/** The delay before retry number `retry` (0-based), with jitter. Exported for tests. */
export function backoffDelayMs(retry: number, opts: RetryOptions = {}, random: Random = systemRandom): number {
  const initial = opts.initialRetryTimeMs ?? DEFAULTS.initialRetryTimeMs;
  const multiplier = opts.multiplier ?? DEFAULTS.multiplier;
  const factor = opts.factor ?? DEFAULTS.factor;
  const max = opts.maxRetryTimeMs ?? DEFAULTS.maxRetryTimeMs;
  const base = Math.min(max, initial * multiplier ** retry);
  const spread = base * factor;
  return Math.max(0, Math.round(base - spread + random.next() * 2 * spread));
}

export function createRetry(opts: RetryOptions = {}): Retry {
  const retries = opts.retries ?? DEFAULTS.retries;
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`retries must be an integer ≥ 0, got ${retries}`);
  const shouldRetry = opts.isRetriable ?? isRetriableStreamingError;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? systemRandom;
  const bail: Bail = (error) => {
    throw new Bailed(error);
  };

  return async <T>(fn: (bail: Bail, attempt: number) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(bail, attempt);
      } catch (e) {
        if (e instanceof Bailed) throw e.error;
        if (!shouldRetry(e)) throw e;
        if (attempt > retries) throw new RetriesExceededError(attempt, e);
        const delayMs = backoffDelayMs(attempt - 1, opts, random);
        opts.onRetry?.({ error: e, attempt, delayMs });
        await wait(clock, delayMs, opts.signal, e);
      }
    }
  };
}

function shutdown(last: unknown): StreamingError {
  return new StreamingError(ErrorCode.ON_SHUTDOWN, 'retry aborted', { cause: last });
}

function wait(clock: Clock, ms: number, signal: AbortSignal | undefined, last: unknown): Promise<void> {
  if (signal?.aborted) return Promise.reject(shutdown(last));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      timer.cancel();
      reject(shutdown(last));
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
