/**
 * The timestamp oracle (TSO), after TiDB PD and the Milvus rootcoord allocator: hands out hybrid
 * timestamps `physicalMs << 18 | logical` that never repeat and never decrease, across clock steps
 * and restarts.
 *
 * - Physical part: max(clock.now(), last physical). If the wall clock steps back, the oracle keeps
 *   the last physical and advances logically; when the logical part overflows 2^18 the physical part
 *   moves on by 1 ms (a range is consecutive integers, so this falls out of plain addition).
 * - Window: the oracle only hands out timestamps whose physical part is ≤ a bound already made
 *   durable in the TsoStore. On open it loads the bound, starts at max(now, bound + 1) and saves
 *   start + window before handing out anything. Allocations that would cross the bound wait for a
 *   new reservation; once within a third of a window of the bound a new one is saved in the
 *   background so that allocate rarely waits.
 * - Allocations run one at a time, in call order, so concurrent callers get disjoint, increasing
 *   ranges even while a reservation is being saved.
 */
import type { Clock } from '../clock';
import { ErrorCode, StreamingError, invalidArgument, toStreamingError } from '../errors';
import { createLogger } from '../logger';
import { LOGICAL_BITS, composeTimetick, physicalOf, type Timetick } from '../message/timetick';
import type { TsoStore } from './tso-store';

/** The most timestamps one `allocate` call may ask for (2^18, one millisecond's worth). */
export const MAX_ALLOCATE_COUNT = 1 << Number(LOGICAL_BITS);

/** Default reservation window: how far ahead of the current physical time a save reaches. */
export const DEFAULT_SAVE_WINDOW_MS = 3000;

export interface TimestampRange {
  /** The first timestamp of the range; the range is `first, first + 1n, …, first + BigInt(count - 1)`. */
  first: Timetick;
  count: number;
}

/** Anything that hands out ranges of globally increasing timestamps (the oracle, or later a remote coordinator). */
export interface TimestampSource {
  allocate(count: number): Promise<TimestampRange>;
}

export interface TimestampOracleOptions {
  /** Durable home of the reserved bound. */
  store: TsoStore;
  /** Wall clock; may step backwards. */
  clock: Clock;
  /** Width of each reservation in physical ms. Default 3000. Must be a positive integer. */
  saveWindowMs?: number;
}

const log = createLogger('tso');

export class TimestampOracle implements TimestampSource {
  private readonly store: TsoStore;
  private readonly clock: Clock;
  private readonly windowMs: number;
  /** A new window is reserved in the background once the bound is this close (window / 3). */
  private readonly refreshMarginMs: number;

  /** The last timestamp handed out (or one below the first one that may be handed out). */
  private last: Timetick;
  /** Highest physical ms that is durably reserved: nothing above it has been handed out. */
  private savedBound: number;
  /** The save in flight, if any; saves never overlap so the store sees increasing bounds in order. */
  private saving: Promise<void> | undefined;
  /** Tail of the allocation queue. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private closing: Promise<void> | undefined;

  private constructor(opts: Required<TimestampOracleOptions>, startPhysical: number, savedBound: number) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.windowMs = opts.saveWindowMs;
    this.refreshMarginMs = Math.max(1, Math.floor(opts.saveWindowMs / 3));
    this.last = composeTimetick(startPhysical, 0) - 1n;
    this.savedBound = savedBound;
  }

  /**
   * Loads the bound, reserves the first window and returns a ready oracle. Rejects with
   * UNRECOVERABLE when the store is corrupt and INVALID_ARGUMENT on bad options.
   */
  static async open(opts: TimestampOracleOptions): Promise<TimestampOracle> {
    const saveWindowMs = opts.saveWindowMs ?? DEFAULT_SAVE_WINDOW_MS;
    if (!Number.isSafeInteger(saveWindowMs) || saveWindowMs < 1) {
      throw invalidArgument('saveWindowMs must be a positive integer', { saveWindowMs });
    }
    const loaded = await opts.store.load();
    if (loaded !== undefined && (!Number.isSafeInteger(loaded) || loaded < 0)) {
      throw new StreamingError(ErrorCode.UNRECOVERABLE, `TSO store returned an invalid bound ${String(loaded)}`, { details: { loaded } });
    }
    const now = readClock(opts.clock);
    const startPhysical = Math.max(now, loaded === undefined ? 0 : loaded + 1);
    const bound = startPhysical + saveWindowMs;
    await opts.store.save(bound);
    if (loaded !== undefined && now <= loaded) {
      log.warn('wall clock is at or below the persisted TSO bound; timestamps continue above the bound', {
        nowMs: now,
        loadedBoundMs: loaded,
        aheadByMs: loaded + 1 - now,
      });
    }
    log.info('timestamp oracle opened', { startPhysicalMs: startPhysical, savedBoundMs: bound, loadedBoundMs: loaded });
    return new TimestampOracle({ store: opts.store, clock: opts.clock, saveWindowMs }, startPhysical, bound);
  }

  /**
   * Hands out `count` consecutive timestamps (1 ≤ count ≤ 2^18), all greater than every timestamp
   * this oracle — or any earlier oracle on the same store — handed out before.
   */
  allocate(count: number): Promise<TimestampRange> {
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_ALLOCATE_COUNT) {
      return Promise.reject(invalidArgument(`allocate count must be an integer in [1, ${MAX_ALLOCATE_COUNT}]`, { count }));
    }
    if (this.closed) return Promise.reject(new StreamingError(ErrorCode.ON_SHUTDOWN, 'timestamp oracle is closed'));
    const run = this.queue.then(() => this.allocateInOrder(count));
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** The highest physical ms durably reserved so far (for metrics and tests). */
  get reservedBoundMs(): number {
    return this.savedBound;
  }

  /** The last timestamp handed out, or one below the first that may be handed out. */
  get lastAllocated(): Timetick {
    return this.last;
  }

  /**
   * Stops intake (later allocate calls reject with ON_SHUTDOWN), lets queued allocations and the
   * save in flight finish. Idempotent; never throws.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = (async () => {
        await this.queue;
        await this.saving?.catch(() => undefined);
        log.info('timestamp oracle closed', { last: this.last, savedBoundMs: this.savedBound });
      })();
    }
    return this.closing;
  }

  /** Runs with the queue held: no other allocation interleaves, even across the awaited save. */
  private async allocateInOrder(count: number): Promise<TimestampRange> {
    const now = readClock(this.clock);
    const fromClock = composeTimetick(now, 0);
    const first = this.last + 1n > fromClock ? this.last + 1n : fromClock;
    const end = first + BigInt(count - 1);
    const endPhysical = physicalOf(end);
    if (endPhysical > this.savedBound) {
      // Reserve before handing out. The range stays the one computed above (no clock re-read), so
      // one reservation always suffices even if the save is slower than a window.
      await this.reserve(endPhysical, endPhysical + this.windowMs);
    }
    this.last = end;
    // endPhysical ≥ now (first is at least now << 18), so this is "the bound is near".
    if (this.savedBound - endPhysical < this.refreshMarginMs && !this.saving) {
      this.startSave(endPhysical + this.windowMs).catch((e: unknown) => {
        log.warn('background TSO reservation failed; the next allocation past the bound will retry', {
          error: toStreamingError(e).toJSON(),
        });
      });
    }
    return { first, count };
  }

  /** Makes `needed` ≤ savedBound, waiting for a save in flight first (it may already cover it). */
  private async reserve(needed: number, target: number): Promise<void> {
    while (this.savedBound < needed) {
      if (this.saving) {
        await this.saving.catch(() => undefined);
        continue;
      }
      await this.startSave(Math.max(target, this.savedBound + 1));
    }
  }

  private startSave(bound: number): Promise<void> {
    const saving = this.store.save(bound).then(
      () => {
        if (bound > this.savedBound) this.savedBound = bound;
        if (this.saving === saving) this.saving = undefined;
      },
      (e: unknown) => {
        if (this.saving === saving) this.saving = undefined;
        throw toStreamingError(e);
      },
    );
    this.saving = saving;
    return saving;
  }
}

function readClock(clock: Clock): number {
  const now = Math.floor(clock.now());
  if (!Number.isSafeInteger(now) || now < 0) {
    throw new StreamingError(ErrorCode.INNER, `clock returned an invalid time ${String(clock.now())}`);
  }
  return now;
}
