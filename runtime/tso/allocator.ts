/**
 * The local batching timestamp allocator a WAL uses (Milvus `resource/idalloc`): it takes ranges of
 * `batchSize` timestamps from a TimestampSource and hands them out one by one, synchronously.
 * Timeticks from one allocator are strictly increasing. `sync()` drops the local batch so that the
 * next timetick is requested from the source after the call, hence above every timetick handed out
 * anywhere (by any allocator on the same source) before it — used for the first TimeTick of a term.
 */
import { systemClock, type Clock } from '../clock';
import { ErrorCode, StreamingError, invalidArgument, toStreamingError } from '../errors';
import { physicalOf, type Timetick } from '../message/timetick';
import { MAX_ALLOCATE_COUNT, type TimestampSource } from './oracle';

export type { TimestampSource } from './oracle';

export const DEFAULT_BATCH_SIZE = 1000;

export interface TsoAllocatorOptions {
  /** Where batches come from: the local oracle, or later a remote coordinator. */
  source: TimestampSource;
  /** Timestamps requested per batch. Default 1000; an integer in [1, 2^18]. */
  batchSize?: number;
  /** Measures batch age for `syncIfExpired` (monotonic time only). Default: the system clock. */
  clock?: Clock;
}

export class TsoAllocator {
  private readonly source: TimestampSource;
  private readonly batchSize: number;
  private readonly clock: Clock;

  /** Next timetick of the local batch; also one above the last one handed out. */
  private next: Timetick = 0n;
  /** How many are left in the local batch. */
  private remaining = 0;
  /** Monotonic ms at which the current batch was requested. */
  private batchRequestedAt = 0;
  /** Physical ms of the batch's first timetick: a lower bound of physicalOf(next), read at every allocation. */
  private batchPhysicalMs = 0;
  /** Bumped by sync(): a request started before it cannot fill the batch after it. */
  private generation = 0;
  private inflight: Promise<void> | undefined;

  constructor(opts: TsoAllocatorOptions) {
    const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_ALLOCATE_COUNT) {
      throw invalidArgument(`batchSize must be an integer in [1, ${MAX_ALLOCATE_COUNT}]`, { batchSize });
    }
    this.source = opts.source;
    this.batchSize = batchSize;
    this.clock = opts.clock ?? systemClock;
  }

  /** The next timetick from the local batch, or undefined when it is empty (then await `refill()`). */
  tryAllocate(): Timetick | undefined {
    if (this.remaining === 0) return undefined;
    this.remaining--;
    const tt = this.next;
    this.next = tt + 1n;
    return tt;
  }

  /**
   * Fetches a new batch when the local one is empty; concurrent calls share one request. Resolves
   * without fetching when the batch still has timeticks. Rejects with the source's error.
   */
  refill(): Promise<void> {
    if (this.remaining > 0) return Promise.resolve();
    if (this.inflight) return this.inflight;
    const generation = this.generation;
    const requestedAt = this.clock.monotonic();
    const inflight = this.source.allocate(this.batchSize).then(
      (range) => {
        if (this.inflight === inflight) this.inflight = undefined;
        if (generation !== this.generation) return; // sync() happened meanwhile: the range may be stale
        if (!Number.isSafeInteger(range.count) || range.count < 1) {
          throw new StreamingError(ErrorCode.INNER, `timestamp source returned a bad count ${String(range.count)}`);
        }
        if (range.first < this.next) {
          throw new StreamingError(ErrorCode.UNRECOVERABLE, 'timestamp source went backwards', {
            details: { first: range.first, expectedAtLeast: this.next },
          });
        }
        this.next = range.first;
        this.batchPhysicalMs = physicalOf(range.first);
        this.remaining = range.count;
        this.batchRequestedAt = requestedAt;
      },
      (e: unknown) => {
        if (this.inflight === inflight) this.inflight = undefined;
        throw toStreamingError(e);
      },
    );
    this.inflight = inflight;
    return inflight;
  }

  /** The next timetick, fetching a batch when needed. */
  async allocate(): Promise<Timetick> {
    for (;;) {
      const tt = this.tryAllocate();
      if (tt !== undefined) return tt;
      await this.refill();
    }
  }

  /**
   * Discards the local batch (and any request in flight) so that the next timetick comes from a
   * source allocation made after this call.
   */
  sync(): void {
    this.remaining = 0;
    this.generation++;
    this.inflight = undefined;
  }

  /**
   * `sync()` when the local batch was requested more than `maxAgeMs` ago, or when its next timetick
   * is more than `maxAgeMs` behind the wall clock (the clock stepped forward), so that timeticks
   * stay close to the wall clock — transaction expiry is measured in them.
   */
  syncIfExpired(maxAgeMs: number): void {
    if (this.remaining === 0) return;
    if (this.clock.monotonic() - this.batchRequestedAt > maxAgeMs) {
      this.sync();
      return;
    }
    // physicalOf(next) ≥ batchPhysicalMs: only a batch whose start is that far behind needs the exact (bigint) look.
    const now = this.clock.now();
    if (now - this.batchPhysicalMs > maxAgeMs && now - physicalOf(this.next) > maxAgeMs) this.sync();
  }
}
