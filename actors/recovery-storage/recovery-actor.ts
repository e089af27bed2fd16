/**
 * The recovery storage of one pchannel: observes every persisted message of its WAL, keeps the
 * vchannel meta, the segment meta and the checkpoint, persists them (metadata first, checkpoint
 * after) on an interval, after N dirty messages (at most once per minimum gap) and on close,
 * hands sealed segments to the flush queue, learns when the flush worker committed them, and
 * truncates the WAL below min(flushed, recovery checkpoint). Persistence is a CAS on the owner's
 * term: a fenced owner's writes never land. The handler never awaits: persistence completes as a
 * message.
 */
import { dispatch, spawn, type Ref } from 'nact';
import type { Clock, TimerHandle } from '../../runtime/clock';
import { isFenced, toStreamingError } from '../../runtime/errors';
import type { Logger } from '../../runtime/logger';
import type { Reply } from '../../runtime/ask';
import type { MessageId } from '../../runtime/message/message-id';
import type { CollectionSchema } from '../../runtime/message/types';
import type { MetaStore, Unsubscribe } from '../../storage/meta/meta-store';
import type { FlushQueue } from '../../storage/flush/flush-queue';
import type { ChannelWriteBuffer } from '../../storage/flush/write-buffer';
import type { WalLog } from '../../storage/wal/backend';
import type { RecoveryMsg, RecoveryStatus } from './messages';
import { flushedWatchPrefix, persistRecoveryState, segmentIdOfFlushedKey } from './persisted';
import type { RecoveryState, SegmentRecord } from './state';

export interface RecoveryOptions {
  /** Default 10000 ms. */
  persistIntervalMs: number;
  /** Persist once this many messages were observed since the last persist. Default 100. */
  maxDirtyMessages: number;
  /**
   * Persists that dirty messages trigger start at most this often (default 100 ms): under heavy
   * traffic 100 messages take a millisecond, and a metadata write (with its fsyncs, on the WAL's
   * disk in standalone) per millisecond would compete with the appends for little gain: the
   * replay after a crash grows by at most this long a stretch of the log. Interval, explicit and
   * closing persists are not delayed.
   */
  minPersistGapMs: number;
  /** Longest close() spends persisting. Default 3000 ms. */
  gracefulCloseTimeoutMs: number;
}

export const DEFAULT_RECOVERY_OPTIONS: RecoveryOptions = { persistIntervalMs: 10_000, maxDirtyMessages: 100, minPersistGapMs: 100, gracefulCloseTimeoutMs: 3_000 };

export interface RecoveryDeps {
  pchannel: string;
  term: number;
  state: RecoveryState;
  meta: MetaStore;
  flushQueue: FlushQueue;
  /** This pchannel's part of the process's write buffer: fed every persisted message, so that a sealed segment's flush finds it encoded. */
  writeBuffer?: ChannelWriteBuffer;
  /** For truncation. */
  log: WalLog;
  clock: Clock;
  logger: Logger;
  options: RecoveryOptions;
}

class RecoveryCore {
  private timer: TimerHandle | undefined;
  private persisting = false;
  /** A persist was asked for (interval, persistNow) while one ran: it follows at once. */
  private persistAgain = false;
  /** Dirty messages asked for a persist while one ran: it follows when the gap allows. */
  private persistAgainPaced = false;
  /** monotonic() when the last persist started. */
  private lastPersistAt = -Infinity;
  /** Set while a dirty-triggered persist waits for the minimum gap. */
  private gapTimer: TimerHandle | undefined;
  private persistWaiters: Ref<Reply<void>>[] = [];
  private closeWaiters: Ref<Reply<void>>[] = [];
  private closing = false;
  private closed = false;
  private fenced = false;
  private unwatch: Promise<Unsubscribe> | undefined;
  private truncatedBelow: MessageId | undefined;
  private submitted = 0;

  constructor(
    private readonly deps: RecoveryDeps,
    private readonly self: Ref<RecoveryMsg>,
  ) {
    this.timer = deps.clock.setInterval(() => dispatch(self, { type: 'tick' }), deps.options.persistIntervalMs);
    this.unwatch = deps.meta
      .watch(flushedWatchPrefix(deps.pchannel), (ev) => {
        if (ev.type !== 'put') return;
        const id = segmentIdOfFlushedKey(deps.pchannel, ev.key);
        if (id !== undefined) dispatch(self, { type: 'flushed', segmentId: id });
      })
      .then(async (u) => {
        // Segments flushed before the watch started.
        const flushed = await deps.meta.list(flushedWatchPrefix(deps.pchannel));
        for (const key of flushed.keys()) {
          const id = segmentIdOfFlushedKey(deps.pchannel, key);
          if (id !== undefined) dispatch(self, { type: 'flushed', segmentId: id });
        }
        return u;
      });
    this.unwatch.catch((e: unknown) => deps.logger.warn('watching flushed segments failed', { pchannel: deps.pchannel, error: toStreamingError(e).message }));
    for (const s of deps.state.pendingFlush()) this.submit(s);
  }

  handle(msg: RecoveryMsg): void {
    switch (msg.type) {
      case 'observe': {
        const { state } = this.deps;
        // Once fenced or closed, nothing buffered here would be flushed at this term.
        const writeBuffer = this.fenced || this.closed ? undefined : this.deps.writeBuffer;
        try {
          for (let i = 0; i < msg.messages.length; i++) {
            const m = msg.messages[i]!;
            const sealed = state.observe(m);
            writeBuffer?.persisted(m, msg.bytes[i]!, sealed, this.schemaOf);
            for (const s of sealed) this.submit(s);
          }
        } catch (e) {
          this.deps.writeBuffer?.close(); // this actor stops: nothing it buffered would be flushed from here
          throw e;
        }
        if (state.dirtyMessages >= this.deps.options.maxDirtyMessages) this.persistWhenGapAllows();
        return;
      }
      case 'gapOver':
        this.gapTimer = undefined;
        if (this.deps.state.dirtyMessages >= this.deps.options.maxDirtyMessages) this.persist();
        return;
      case 'tick':
        if (this.deps.state.dirtyMessages > 0 || this.deps.state.dirtySegments.size > 0) this.persist();
        return;
      case 'persistNow':
        if (msg.replyTo) this.persistWaiters.push(msg.replyTo);
        this.persist();
        return;
      case 'persisted':
        return this.onPersisted(msg.error);
      case 'flushed':
        this.deps.state.markFlushed(msg.segmentId);
        this.deps.writeBuffer?.drop(msg.segmentId); // flushed without it (another process, or from the WAL)
        return;
      case 'status':
        dispatch(msg.replyTo, this.status());
        return;
      case 'close':
        return this.onClose(msg.replyTo);
    }
  }

  private readonly schemaOf = (vchannel: string, collectionId: number): CollectionSchema | undefined => this.deps.state.vchannels.collection(vchannel, collectionId)?.schema;

  private submit(s: SegmentRecord): void {
    const c = this.deps.state.vchannels.collection(s.vchannel, s.collectionId);
    if (!c || s.flushId === undefined || s.flushTimetick === undefined) {
      this.deps.writeBuffer?.drop(s.segmentId);
      return;
    }
    this.submitted++;
    this.deps.flushQueue
      .submit({
        pchannel: this.deps.pchannel,
        term: this.deps.term,
        segmentId: s.segmentId,
        vchannel: s.vchannel,
        collectionId: s.collectionId,
        partitionId: s.partitionId,
        schema: c.schema,
        fromId: s.createId,
        toId: s.flushId,
        toTimetick: s.flushTimetick,
      })
      .catch((e: unknown) => {
        this.deps.writeBuffer?.drop(s.segmentId); // the job of the next open reads the WAL
        this.deps.logger.warn('flush job not queued; it is resubmitted on the next open', { pchannel: this.deps.pchannel, segmentId: s.segmentId, error: toStreamingError(e).message });
      });
  }

  /** A persist for dirty messages: now, or once `minPersistGapMs` has passed since the last one started. */
  private persistWhenGapAllows(): void {
    if (this.persisting) {
      this.persistAgainPaced = true;
      return;
    }
    if (this.gapTimer) return;
    const wait = this.lastPersistAt + this.deps.options.minPersistGapMs - this.deps.clock.monotonic();
    if (wait <= 0) this.persist();
    else this.gapTimer = this.deps.clock.setTimeout(() => dispatch(this.self, { type: 'gapOver' }), wait);
  }

  private persist(): void {
    if (this.fenced || this.closed) return;
    if (this.persisting) {
      this.persistAgain = true;
      return;
    }
    this.persisting = true;
    this.lastPersistAt = this.deps.clock.monotonic();
    this.gapTimer?.cancel();
    this.gapTimer = undefined;
    const { meta, pchannel, term, state, log } = this.deps;
    persistRecoveryState(meta, pchannel, term, state)
      .then(async () => {
        const point = state.truncationPoint();
        if (point !== undefined && point !== '' && (this.truncatedBelow === undefined || point > this.truncatedBelow) && !this.closing) {
          await log.truncate(point);
          this.truncatedBelow = point;
        }
      })
      .then(
        () => dispatch(this.self, { type: 'persisted' }),
        (error: unknown) => dispatch(this.self, { type: 'persisted', error }),
      );
  }

  private onPersisted(error: unknown): void {
    this.persisting = false;
    const waiters = this.persistWaiters;
    this.persistWaiters = [];
    if (error !== undefined) {
      const err = toStreamingError(error);
      if (isFenced(err)) {
        this.fenced = true;
        this.deps.writeBuffer?.close(); // the new owner flushes these segments, from the WAL
        this.deps.logger.warn('recovery storage fenced: a newer term owns the pchannel; nothing more is persisted', { pchannel: this.deps.pchannel, term: this.deps.term });
      } else {
        this.deps.logger.warn('persisting recovery state failed; retrying on the next tick', { pchannel: this.deps.pchannel, error: err.message });
      }
      for (const w of waiters) dispatch(w, { ok: false, error: err });
    } else {
      for (const w of waiters) dispatch(w, { ok: true, value: undefined });
    }
    if (this.closing) {
      this.finishClose();
      return;
    }
    const again = this.persistAgain;
    const paced = this.persistAgainPaced;
    this.persistAgain = false;
    this.persistAgainPaced = false;
    if (again) this.persist();
    else if (paced) this.persistWhenGapAllows();
  }

  private onClose(replyTo: Ref<Reply<void>>): void {
    this.closeWaiters.push(replyTo);
    if (this.closing) return;
    this.closing = true;
    this.timer?.cancel();
    this.gapTimer?.cancel();
    this.deps.clock.setTimeout(() => this.finishClose(), this.deps.options.gracefulCloseTimeoutMs);
    if (this.persisting) return; // finishes in onPersisted
    if (this.fenced) {
      this.finishClose();
      return;
    }
    this.persisting = true;
    persistRecoveryState(this.deps.meta, this.deps.pchannel, this.deps.term, this.deps.state).then(
      () => dispatch(this.self, { type: 'persisted' }),
      (error: unknown) => dispatch(this.self, { type: 'persisted', error }),
    );
  }

  private finishClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.deps.writeBuffer?.close();
    void this.unwatch?.then((u) => u()).catch(() => undefined);
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) dispatch(w, { ok: true, value: undefined });
  }

  private status(): RecoveryStatus {
    const counts = { growing: 0, sealed: 0, flushed: 0, dropped: 0 };
    for (const s of this.deps.state.segments.values()) counts[s.state]++;
    return {
      pchannel: this.deps.pchannel,
      term: this.deps.term,
      checkpoint: this.deps.state.checkpoint,
      persistedCheckpoint: this.deps.state.persistedCheckpoint,
      segments: counts,
      dirtyMessages: this.deps.state.dirtyMessages,
      truncatedBelow: this.truncatedBelow,
      flushJobsSubmitted: this.submitted,
    };
  }
}

export function spawnRecoveryStorage(parent: Ref<unknown>, deps: RecoveryDeps): Ref<RecoveryMsg> {
  return spawn(
    parent as Ref<never>,
    (core: RecoveryCore, msg: RecoveryMsg) => {
      core.handle(msg);
      return core;
    },
    'recovery-storage',
    { initialStateFunc: (ctx) => new RecoveryCore(deps, ctx.self as Ref<RecoveryMsg>) },
  );
}
