/**
 * The WAL actor: one per owned pchannel. It runs the interceptor chain (lock → timetick → shard),
 * group-commits appends through one ordered write at a time (so message-id order = timetick order),
 * feeds the write-ahead buffer, emits TimeTicks, and serves subscriptions.
 *
 * nact awaits a handler's promise before the next message, so the handler never awaits I/O: it
 * starts the write and the completion comes back as `appendPersisted` / `appendFailed`.
 */
import { dispatch, spawn, type Ref } from 'nact';
import type { Clock, TimerHandle } from '../../runtime/clock';
import { ErrorCode, StreamingError, toStreamingError, isFenced } from '../../runtime/errors';
import { createLogger, type Logger } from '../../runtime/logger';
import { encodeMessage } from '../../runtime/message/codec';
import type { MessageId } from '../../runtime/message/message-id';
import type { LogMessage, Message, NewMessage, TimeTickMessage } from '../../runtime/message/types';
import type { PChannelInfo, WalBackend, WalLog } from '../../storage/wal/backend';
import { buildChain } from './interceptors/chain';
import { appendAsync, failed, type AppendDone, type AppendNext, type AppendResult } from './interceptors/interceptor';
import { LockInterceptor } from './interceptors/lock';
import { RedoInterceptor } from './interceptors/redo';
import { AUTO_ID_ROWS_PER_SEGMENT, ShardInterceptor } from './interceptors/shard';
import { TimetickInterceptor, TSO_BATCH_MAX_AGE_MS, type TimetickSource } from './interceptors/timetick';
import { IdempotencyWindow } from './idempotency';
import { GroupCommitPacer } from './group-commit-pacer';
import { VChannelLocks } from './locks';
import type { AppendEntry, Reply, WalMsg, WalStatus } from './messages';
import type { WalOptions } from './options';
import { Scanner } from './scanner/scanner';
import { TxnManager } from './txn-manager';
import { VChannelMeta } from './vchannel-meta';
import { WriteAheadBuffer } from './write-ahead-buffer';
import { DEFAULT_SEGMENT_LIMITS, MemoryBudget, SegmentManager, type Segment, type SegmentLimits } from './segments';
import type { MetaStore } from '../../storage/meta/meta-store';
import type { WriteBuffer } from '../../storage/flush/write-buffer';
import type { FlushQueue } from '../../storage/flush/flush-queue';
import { recover, type ReplayProgress } from '../recovery-storage/replay';
import type { RecoveryState } from '../recovery-storage/state';
import { DEFAULT_RECOVERY_OPTIONS, spawnRecoveryStorage, type RecoveryOptions } from '../recovery-storage/recovery-actor';
import type { RecoveryMsg } from '../recovery-storage/messages';
import { ask } from '../../runtime/ask';

/** The timestamp allocator a WAL needs: local batches plus `sync()` before a term's first TimeTick. */
export interface WalTso extends TimetickSource {
  sync(): void;
  allocate(): Promise<bigint>;
}

export interface WalDeps {
  channel: PChannelInfo;
  backend: WalBackend;
  tso: WalTso;
  clock: Clock;
  options: WalOptions;
  /** Recovery state, checkpoints and flushed-segment marks live here (owner writes fenced by term). */
  meta: MetaStore;
  /** Where sealed segments go to be flushed. */
  flushQueue: FlushQueue;
  /** The process's write buffer (storage/flush/write-buffer.ts), shared with its flush worker; none: every flush reads the WAL. */
  writeBuffer?: WriteBuffer;
  /** Segment ids: unique across nodes and restarts (a MetaStore counter). */
  segmentIds: { next(): Promise<number> };
  segmentLimits?: SegmentLimits;
  /** Growing bytes of all WALs of the node (memory seal policy); default: this WAL's own. */
  memoryBudget?: MemoryBudget;
  recovery?: Partial<RecoveryOptions>;
  /** Progress of a long replay on open (for a progress bar). */
  onReplayProgress?: (p: ReplayProgress) => void;
  logger?: Logger;
}

/** Types a WAL never takes from an append request: it writes them itself, or they exist only when read. */
const NOT_APPENDABLE = new Set<Message['type']>(['TimeTick', 'Txn', 'CreateSegment', 'Flush']);

interface PipeEntry {
  msg: Message;
  bytes: Uint8Array;
  done: AppendDone;
}

/** One group commit handed to the backend, and its outcome once known (applied in batch order). */
interface InFlightWrite {
  batch: number;
  entries: PipeEntry[];
  /** performance.now() when handed to the backend, and when the backend answered. */
  startedAt: number;
  doneAt?: number;
  outcome?: { ids: MessageId[] } | { error: StreamingError };
}

type WalState = WalStatus['state'];

export class WalCore {
  private state: WalState = 'opening';
  private log: WalLog | undefined;
  private readonly logger: Logger;
  private readonly wab: WriteAheadBuffer;
  private readonly txns = new TxnManager();
  private readonly locks = new VChannelLocks();
  private meta = new VChannelMeta();
  private segments: SegmentManager;
  private readonly creatingSegments = new Map<string, Promise<void>>();
  private recoveryRef: Ref<RecoveryMsg> | undefined;
  private readonly chain: AppendNext;
  private readonly scanners = new Set<Scanner>();
  private idempotency: IdempotencyWindow;

  /** Requests that arrived before the open finished. */
  private waitingForOpen: (WalMsg | AppendEntry)[] = [];
  /** Appends inside the chain (waiting for a lock, the TSO or their write). */
  private appending = 0;
  private pending: PipeEntry[] = [];
  /** Group commits handed to the backend, oldest first; completed strictly in this order. */
  private inFlight: InFlightWrite[] = [];
  private readonly pacer = new GroupCommitPacer();
  /** Event-loop busy time (ms) when groups were last answered: the pacer's measure of the work per append. */
  private busyAtLastAnswer = performance.eventLoopUtilization().active;
  private batchSeq = 0;
  private writeScheduled = false;

  private lastPersistedId: MessageId = '';
  private lastTimetick = 0n;
  private persistedSinceTick = false;
  private tickTimer: TimerHandle | undefined;
  private closeWaiters: Ref<Reply<void>>[] = [];
  private closeTimer: TimerHandle | undefined;

  constructor(
    private readonly deps: WalDeps,
    private readonly self: Ref<WalMsg>,
  ) {
    const core = this;
    this.logger = deps.logger ?? createLogger('wal');
    this.wab = new WriteAheadBuffer(deps.options.writeAheadBuffer, deps.clock);
    this.idempotency = new IdempotencyWindow(deps.options.idempotencyWindow);
    this.segments = this.newSegmentManager();
    this.chain = buildChain(
      [
        new RedoInterceptor(),
        new LockInterceptor({ locks: this.locks, txns: this.txns }),
        new TimetickInterceptor({
          tso: deps.tso,
          txns: this.txns,
          term: deps.channel.term,
          lastPersistedId: () => this.lastPersistedId,
          defaultTxnKeepaliveMs: deps.options.defaultTxnKeepaliveMs,
        }),
        new ShardInterceptor({
          // Getters: the open replaces meta and segments with the recovered ones.
          get meta() {
            return core.meta;
          },
          get segments() {
            return core.segments;
          },
          now: () => deps.clock.monotonic(),
          createSegment: (v, c, p) => this.createSegment(v, c, p),
          // Later, not now: the insert that sealed them already holds a timetick and must reach the pipe first.
          flushSegments: (segs) => queueMicrotask(() => this.flushSegments(segs)),
        }),
      ],
      (msg, done) => this.enqueue(msg, done),
    );
    this.open();
  }

  private newSegmentManager(): SegmentManager {
    const limits = this.deps.segmentLimits ?? DEFAULT_SEGMENT_LIMITS;
    return new SegmentManager(limits, this.deps.memoryBudget ?? new MemoryBudget(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
  }

  /** Writes a CreateSegment for the partition (one at a time per partition). */
  private createSegment(vchannel: string, collectionId: number, partitionId: number): Promise<void> {
    const key = `${vchannel}/${collectionId}/${partitionId}`;
    const running = this.creatingSegments.get(key);
    if (running) return running;
    const limits = this.segments.limits;
    const p = (async () => {
      const segmentId = await this.deps.segmentIds.next();
      await appendAsync(this.chain, {
        type: 'CreateSegment',
        vchannel,
        timetick: 0n,
        lastConfirmedId: '',
        term: 0,
        // Generated keys number the rows of a segment: never more than they leave room for.
        header: { collectionId, partitionId, segmentId, maxRows: Math.min(limits.maxRows, AUTO_ID_ROWS_PER_SEGMENT), maxBytes: limits.maxBytes },
        body: {},
      });
      this.logger.debug('segment created', { pchannel: this.pchannel, vchannel, collectionId, partitionId, segmentId });
    })().finally(() => this.creatingSegments.delete(key));
    this.creatingSegments.set(key, p);
    return p;
  }

  /** Writes the Flush message of each sealed segment, in the background. */
  private flushSegments(segs: Segment[]): void {
    for (const s of segs) {
      if (s.flushRequested) continue;
      s.flushRequested = true;
      appendAsync(this.chain, {
        type: 'Flush',
        vchannel: s.vchannel,
        timetick: 0n,
        lastConfirmedId: '',
        term: 0,
        header: { collectionId: s.collectionId, partitionId: s.partitionId, segmentId: s.segmentId },
        body: {},
      }).then(
        () => this.logger.debug('segment sealed', { pchannel: this.pchannel, segmentId: s.segmentId, rows: s.rows, bytes: s.bytes }),
        (e: unknown) => {
          s.flushRequested = false;
          if (this.state === 'open') this.logger.warn('writing a Flush failed; the segment stays sealed until the next open', { pchannel: this.pchannel, segmentId: s.segmentId, error: toStreamingError(e).message });
        },
      );
    }
  }

  private get pchannel(): string {
    return this.deps.channel.name;
  }

  // ------------------------------------------------------------------ open

  private open(): void {
    openSequence(this.deps).then(
      (r) => dispatch(this.self, { type: 'opened', ...r }),
      (e) => dispatch(this.self, { type: 'openFailed', error: toStreamingError(e) }),
    );
  }

  private onOpened(msg: Extract<WalMsg, { type: 'opened' }>): void {
    if (this.state !== 'opening') {
      void msg.log.close();
      return;
    }
    this.log = msg.log;
    this.adoptRecovered(msg.recovered, msg.log);
    this.idempotency = msg.idempotency;
    this.lastPersistedId = msg.firstTimeTick.id;
    this.lastTimetick = msg.firstTimeTick.timetick;
    this.wab.append([msg.firstTimeTick]);
    this.state = 'open';
    this.tickTimer = this.deps.clock.setInterval(() => dispatch(this.self, { type: 'tick' }), this.deps.options.timetickIntervalMs);
    this.logger.info('wal opened', { pchannel: this.pchannel, term: this.deps.channel.term, firstTimetick: msg.firstTimeTick.timetick, vchannels: this.meta.vchannelNames().length });
    const waiting = this.waitingForOpen;
    this.waitingForOpen = [];
    for (const m of waiting) this.replay(m);
  }

  /** Takes over the recovered state: vchannel meta, growing segments, and starts the recovery storage. */
  private adoptRecovered(state: RecoveryState, log: WalLog): void {
    this.meta = state.vchannels;
    const now = this.deps.clock.monotonic();
    for (const r of state.segments.values()) {
      if (r.state !== 'growing') continue;
      this.segments.created({
        segmentId: r.segmentId,
        vchannel: r.vchannel,
        collectionId: r.collectionId,
        partitionId: r.partitionId,
        maxRows: r.maxRows,
        maxBytes: r.maxBytes,
        createId: r.createId,
        createTimetick: BigInt(r.createTimetick),
        createdAt: now,
      });
      this.segments.observeInsert(r.segmentId, r.rows, r.bytes, now);
    }
    this.recoveryRef = spawnRecoveryStorage(this.self, {
      pchannel: this.pchannel,
      term: this.deps.channel.term,
      state,
      meta: this.deps.meta,
      flushQueue: this.deps.flushQueue,
      ...(this.deps.writeBuffer ? { writeBuffer: this.deps.writeBuffer.channel(this.pchannel, this.deps.channel.term) } : {}),
      log,
      clock: this.deps.clock,
      logger: this.logger,
      options: { ...DEFAULT_RECOVERY_OPTIONS, ...(this.deps.recovery ?? {}) },
    });
  }

  /** The recovery storage of this WAL (once open). */
  get recovery(): Ref<RecoveryMsg> | undefined {
    return this.recoveryRef;
  }

  private onOpenFailed(error: StreamingError): void {
    this.state = isFenced(error) ? 'fenced' : 'failed';
    this.logger.error('wal open failed', { pchannel: this.pchannel, term: this.deps.channel.term, code: error.code, error: error.message });
    const waiting = this.waitingForOpen;
    this.waitingForOpen = [];
    for (const m of waiting) this.replay(m);
    // A fenced open is final for this term; anything else is a crash for the supervisor to judge.
    if (!isFenced(error)) throw new WalCrash(this.pchannel, error);
  }

  // ------------------------------------------------------------------ dispatch

  /** Handles a request that waited for the open. */
  private replay(m: WalMsg | AppendEntry): void {
    if ('reply' in m) this.appendOne(m);
    else this.handle(m);
  }

  handle(msg: WalMsg): void {
    switch (msg.type) {
      case 'append':
        return this.onAppend(msg);
      case 'appendBatch':
        return this.onAppendBatch(msg);
      case 'subscribe':
        return this.onSubscribe(msg);
      case 'status':
        dispatch(msg.replyTo, this.status());
        return;
      case 'awaitOpen':
        if (this.state === 'opening') this.waitingForOpen.push(msg);
        else if (this.state === 'open') dispatch(msg.replyTo, { ok: true, value: this.status() });
        else dispatch(msg.replyTo, { ok: false, error: this.unavailableError() });
        return;
      case 'close':
        return this.onClose(msg.replyTo);
      case 'opened':
        return this.onOpened(msg);
      case 'openFailed':
        return this.onOpenFailed(msg.error);
      case 'startWrite':
        this.writeScheduled = false;
        return this.startWrite(true);
      case 'appendPersisted':
        return this.onWriteDone(msg.batch, { ids: msg.ids });
      case 'appendFailed':
        return this.onWriteDone(msg.batch, { error: msg.error });
      case 'tick':
        return this.onTick();
      case 'closeDeadline':
        return this.finishClose(true);
      case 'closed':
        return this.onClosed();
    }
  }

  private unavailableError(): StreamingError {
    switch (this.state) {
      case 'fenced':
        return new StreamingError(ErrorCode.CHANNEL_FENCED, `pchannel ${this.pchannel} at term ${this.deps.channel.term} is fenced by a newer term`);
      case 'failed':
        return new StreamingError(ErrorCode.INNER, `pchannel ${this.pchannel} failed; it must be reopened`, { retriable: true });
      default:
        return new StreamingError(ErrorCode.ON_SHUTDOWN, `pchannel ${this.pchannel} is ${this.state}`);
    }
  }

  // ------------------------------------------------------------------ append

  private onAppend(req: Extract<WalMsg, { type: 'append' }>): void {
    const replyTo = req.replyTo;
    this.appendOne({ message: req.message, reply: (r) => dispatch(replyTo, r) });
  }

  private onAppendBatch(req: Extract<WalMsg, { type: 'appendBatch' }>): void {
    req.taken = true;
    dispatch(req.replyTo, { ok: true, value: undefined });
    const entries = req.entries;
    for (let i = 0; i < entries.length; i++) this.appendOne(entries[i]!);
  }

  private appendOne(entry: AppendEntry): void {
    if (this.state === 'opening') {
      if (this.waitingForOpen.length >= this.deps.options.maxPendingAppends) {
        this.answer(entry, { ok: false, error: this.exhausted() });
      } else {
        this.waitingForOpen.push(entry);
      }
      return;
    }
    if (this.state !== 'open') {
      this.answer(entry, { ok: false, error: this.unavailableError() });
      return;
    }
    const m = entry.message;
    if (NOT_APPENDABLE.has(m.type)) {
      this.answer(entry, {
        ok: false,
        error: new StreamingError(ErrorCode.INVALID_ARGUMENT, `${m.type} messages are written by the WAL itself and cannot be appended`, { details: { field: 'type' } }),
      });
      return;
    }
    if (this.appending >= this.deps.options.maxPendingAppends) {
      this.answer(entry, { ok: false, error: this.exhausted() });
      return;
    }
    const key = m.idempotencyKey;
    if (key !== undefined) {
      const seen = this.idempotency.lookup(key);
      if (seen !== undefined) {
        Promise.resolve(seen).then(
          (value) => this.answer(entry, { ok: true, value }),
          (e: unknown) => this.answer(entry, { ok: false, error: toStreamingError(e) }),
        );
        return;
      }
    }
    this.appending++;
    let done: AppendDone = (o) => {
      this.appending--;
      this.answer(entry, o.ok ? o : { ok: false, error: toStreamingError(o.error) });
    };
    if (key !== undefined) {
      const answer = done;
      const appended = new Promise<AppendResult>((resolve, reject) => {
        done = (o) => {
          answer(o);
          if (o.ok) resolve(o.value);
          else reject(o.error);
        };
      });
      this.idempotency.track(key, appended);
    }
    this.chain(ownCopy(m), done);
  }

  /** Answers an append. Answers are given in loops over a batch or a group: one caller's failing callback must not cut the others short. */
  private answer(entry: AppendEntry, r: Reply<AppendResult>): void {
    try {
      entry.reply(r);
    } catch (e) {
      this.logger.warn('answering an append failed', { pchannel: this.pchannel, error: toStreamingError(e).message });
    }
  }

  private exhausted(): StreamingError {
    return new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, `pchannel ${this.pchannel} has ${this.deps.options.maxPendingAppends} appends pending; retry later`, {
      details: { limit: this.deps.options.maxPendingAppends },
    });
  }

  /** Innermost step of the chain: encode and queue for the next group commit. Synchronous up to the queueing. */
  private enqueue(msg: Message, done: AppendDone): void {
    if (this.state !== 'open') {
      done(failed(this.unavailableError()));
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage(msg, { maxMessageBytes: this.deps.options.maxMessageBytes });
    } catch (e) {
      done(failed(e));
      return;
    }
    this.pending.push({ msg, bytes, done });
    if (msg.type !== 'TimeTick') this.persistedSinceTick = true;
    this.scheduleWrite();
  }

  /** Group commits that may be in flight now: several only while the pacer overlaps the appenders' work with writing (GroupCommitPacer). */
  private writeSlots(): number {
    const max = this.deps.options.maxInFlightWrites;
    return max > 1 && this.pacer.overlap ? max : 1;
  }

  private scheduleWrite(): void {
    if (this.writeScheduled || this.pending.length === 0 || this.inFlight.length >= this.writeSlots()) return;
    this.writeScheduled = true;
    const delay = this.deps.options.groupCommitDelayMs;
    if (delay > 0) this.deps.clock.setTimeout(() => dispatch(this.self, { type: 'startWrite' }), delay);
    // Behind every request already in the mailbox: they join this group commit.
    else dispatch(this.self, { type: 'startWrite' });
  }

  /**
   * Hands group commits to the backend while fewer than `maxInFlightWrites` are outstanding. The
   * backend keeps call order, so ids still follow timetick order; completions are applied in batch
   * order. When a burst of appends finds the pipe empty (`split`), the pacer may cut it in two
   * groups, so that encoding and I/O overlap; a completion then hands the next group on whole, so
   * that such waves of appenders keep their size (see onWriteDone and GroupCommitPacer).
   */
  private startWrite(split: boolean): void {
    if (!this.log) return;
    const { groupCommitMaxMessages, groupCommitMaxBytes } = this.deps.options;
    const slots = this.writeSlots();
    while (this.pending.length > 0 && this.inFlight.length < slots) {
      const free = slots - this.inFlight.length;
      let limit = groupCommitMaxMessages;
      if (split && this.inFlight.length === 0) limit = Math.min(limit, this.pacer.firstGroupLimit(this.pending.length, free));
      let n = 0;
      let bytes = 0;
      while (n < this.pending.length && n < limit) {
        const b = this.pending[n]!.bytes.length;
        if (n > 0 && bytes + b > groupCommitMaxBytes) break;
        bytes += b;
        n++;
      }
      const entries = n === this.pending.length ? this.pending : this.pending.slice(0, n);
      this.pending = n === this.pending.length ? [] : this.pending.slice(n);
      const batch = ++this.batchSeq;
      const w: InFlightWrite = { batch, entries, startedAt: performance.now() };
      this.inFlight.push(w);
      const records = new Array<Uint8Array>(entries.length);
      for (let i = 0; i < entries.length; i++) records[i] = entries[i]!.bytes;
      this.log.append(records).then(
        (ids) => {
          w.doneAt = performance.now();
          dispatch(this.self, { type: 'appendPersisted', batch, ids });
        },
        (e) => dispatch(this.self, { type: 'appendFailed', batch, error: toStreamingError(e) }),
      );
    }
  }

  /** Records the outcome of a group commit and applies every completed one at the head, in order. */
  private onWriteDone(batch: number, outcome: NonNullable<InFlightWrite['outcome']>): void {
    const w = this.inFlight.find((f) => f.batch === batch);
    if (!w || w.outcome) return;
    w.outcome = outcome;
    if (w.doneAt !== undefined) this.pacer.observeWrite(w.startedAt, w.doneAt);
    let answered = 0;
    while (this.inFlight.length > 0 && this.inFlight[0]!.outcome) {
      const head = this.inFlight.shift()!;
      const o = head.outcome!;
      if ('error' in o) return this.onWriteFailed(head.entries, o.error);
      if (!this.applyPersisted(head.entries, o.ids)) return;
      answered += head.entries.length;
    }
    if (answered > 0) {
      const busy = performance.eventLoopUtilization().active;
      this.pacer.observeBusy(answered, busy - this.busyAtLastAnswer);
      this.busyAtLastAnswer = busy;
      // The wave is everyone still in the chain plus the appenders just answered, who come right back.
      const was = this.pacer.overlap;
      if (this.pacer.decide(this.appending + answered) !== was) {
        this.logger.debug('group commit mode changed', { pchannel: this.pchannel, mode: this.pacer.overlap ? 'overlap' : 'merge', wave: this.appending + answered, ...this.pacer.snapshot() });
      }
    }
    if (this.state === 'closing') {
      this.maybeFinishClose();
      if (this.pending.length > 0) this.startWrite(false);
      return;
    }
    if (this.state !== 'open' || this.pending.length === 0) return;
    if (this.pacer.overlap) {
      this.startWrite(false);
    } else if (!this.writeScheduled) {
      // Merge: the appenders just answered come back with their next appends in their own
      // mailbox turn; the write starts after it, so they join the pending group.
      this.writeScheduled = true;
      setImmediate(() => dispatch(this.self, { type: 'startWrite' }));
    }
  }

  /** Publishes a durable group: ids, write-ahead buffer, recovery storage, answers. False if the backend broke id order. */
  private applyPersisted(entries: PipeEntry[], ids: MessageId[]): boolean {
    if (ids.length !== entries.length || (ids.length > 0 && ids[0]! <= this.lastPersistedId)) {
      const error = new StreamingError(ErrorCode.INNER, `backend of pchannel ${this.pchannel} returned ${ids.length} ids for ${entries.length} records${ids.length > 0 ? `, first ${ids[0]} after ${this.lastPersistedId}` : ''}: ids must follow append order`);
      this.onWriteFailed(entries, error);
      return false;
    }
    const written: LogMessage[] = new Array<LogMessage>(entries.length);
    const bytes: Uint8Array[] = new Array<Uint8Array>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const lm = e.msg as LogMessage;
      lm.id = ids[i]!;
      lm.size = e.bytes.length;
      written[i] = lm;
      bytes[i] = e.bytes;
    }
    const last = written[written.length - 1]!;
    this.lastPersistedId = last.id;
    this.lastTimetick = last.timetick;
    this.wab.append(written);
    if (this.recoveryRef) dispatch(this.recoveryRef, { type: 'observe', messages: written, bytes });
    for (let i = 0; i < entries.length; i++) {
      const lm = written[i]!;
      entries[i]!.done({ ok: true, value: { id: lm.id, timetick: lm.timetick, lastConfirmedId: lm.lastConfirmedId } });
    }
    return true;
  }

  /**
   * A group commit failed: the WAL stops taking appends. The failed group, every later one still
   * in flight and everything pending are refused with the error; a later group the backend did
   * write anyway is found by the next open's recovery.
   */
  private onWriteFailed(failedGroup: PipeEntry[], error: StreamingError): void {
    const later = this.inFlight;
    this.inFlight = [];
    const pending = this.pending;
    this.pending = [];
    if (isFenced(error)) {
      this.state = 'fenced';
      this.logger.warn('wal fenced: a newer term owns the pchannel; refusing every append', { pchannel: this.pchannel, term: this.deps.channel.term });
    } else {
      this.state = 'failed';
      this.logger.error('wal write failed; the pchannel must be reopened', { pchannel: this.pchannel, term: this.deps.channel.term, error: error.message });
    }
    const err = isFenced(error) ? error : new StreamingError(ErrorCode.INNER, `write to pchannel ${this.pchannel} failed: ${error.message}`, { cause: error, retriable: true });
    const outcome = failed(err);
    for (const e of failedGroup) e.done(outcome);
    for (const w of later) for (const e of w.entries) e.done(outcome);
    for (const e of pending) e.done(outcome);
    this.stopTicking();
    for (const s of [...this.scanners]) s.fail(this.unavailableError());
    this.wab.close();
    this.maybeFinishClose();
    if (this.state === 'failed') throw new WalCrash(this.pchannel, error);
  }

  /**
   * Releases what this incarnation holds, without waiting: used by the supervisor before it resets
   * (reopens) or stops a crashed WAL. Pending callers get ON_SHUTDOWN; the log is closed in the background.
   */
  abandon(): void {
    if (this.state === 'closed') return;
    this.closeTimer?.cancel();
    this.stopTicking();
    const err = new StreamingError(ErrorCode.ON_SHUTDOWN, `pchannel ${this.pchannel} is restarting`);
    for (const e of this.pending) e.done(failed(err));
    this.pending = [];
    for (const s of [...this.scanners]) s.fail(err);
    this.wab.close();
    if (this.state !== 'fenced') this.state = 'closed';
    const log = this.log;
    this.log = undefined;
    void log?.close().catch(() => undefined);
    if (this.recoveryRef) dispatch(this.recoveryRef, { type: 'close', replyTo: this.self as unknown as Ref<Reply<void>> });
    this.recoveryRef = undefined;
    this.replyClosed();
  }

  // ------------------------------------------------------------------ timeticks

  private onTick(): void {
    if (this.state !== 'open') return;
    const due = this.segments.dueForSeal(this.deps.clock.monotonic());
    if (due.length > 0) {
      for (const d of due) this.segments.seal(d.segment.segmentId);
      this.logger.info('sealing segments by policy', { pchannel: this.pchannel, segments: due.map((d) => ({ segmentId: d.segment.segmentId, reason: d.reason, rows: d.segment.rows })) });
      this.flushSegments(due.map((d) => d.segment));
    }
    if (this.inFlight.length > 0 || this.pending.length > 0 || this.persistedSinceTick) {
      this.persistedSinceTick = false;
      const tick: TimeTickMessage = { type: 'TimeTick', vchannel: '', timetick: 0n, lastConfirmedId: '', term: 0, header: {}, body: {} };
      this.appending++;
      this.chain(tick, (o) => {
        this.appending--;
        if (!o.ok && this.state === 'open') this.logger.warn('timetick append failed', { pchannel: this.pchannel, error: toStreamingError(o.error).message });
      });
      return;
    }
    // Idle: a TimeTick only readers see; it advances them without a write.
    this.deps.tso.syncIfExpired(TSO_BATCH_MAX_AGE_MS);
    const tt = this.deps.tso.tryAllocate();
    if (tt === undefined) {
      // The batch was empty or too old: fetch one and tick again once it is here.
      this.deps.tso.refill().then(
        () => dispatch(this.self, { type: 'tick' }),
        (e: unknown) => this.logger.warn('tso refill failed', { error: toStreamingError(e).message }),
      );
      return;
    }
    this.txns.cleanupUntil(tt);
    const idle: LogMessage<TimeTickMessage> = {
      type: 'TimeTick',
      vchannel: '',
      timetick: tt,
      lastConfirmedId: this.lastPersistedId,
      term: this.deps.channel.term,
      header: {},
      body: {},
      id: this.lastPersistedId,
      size: 0,
      notPersisted: true,
    };
    this.lastTimetick = tt;
    this.wab.append([idle]);
  }

  private stopTicking(): void {
    this.tickTimer?.cancel();
    this.tickTimer = undefined;
  }

  // ------------------------------------------------------------------ subscribe

  private onSubscribe(req: Extract<WalMsg, { type: 'subscribe' }>): void {
    if (this.state === 'opening') {
      this.waitingForOpen.push(req);
      return;
    }
    if (this.state !== 'open' || !this.log) {
      dispatch(req.replyTo, { ok: false, error: this.unavailableError() });
      return;
    }
    try {
      const scanner = new Scanner(
        {
          pchannel: this.pchannel,
          log: this.log,
          wab: this.wab,
          logger: this.logger,
          defaultCredits: this.deps.options.subscriberCredits,
          onClose: (s) => this.scanners.delete(s),
        },
        req.options,
      );
      this.scanners.add(scanner);
      dispatch(req.replyTo, { ok: true, value: scanner });
    } catch (e) {
      dispatch(req.replyTo, { ok: false, error: toStreamingError(e) });
    }
  }

  // ------------------------------------------------------------------ status and close

  status(): WalStatus {
    return {
      pchannel: this.pchannel,
      term: this.deps.channel.term,
      state: this.state,
      lastTimetick: this.lastTimetick.toString(),
      lastPersistedId: this.lastPersistedId,
      writeAheadBuffer: { entries: this.wab.length, bytes: this.wab.sizeBytes },
      pendingAppends: this.appending,
      inFlightWrite: this.inFlight.reduce((n, w) => n + w.entries.length, 0),
      openTransactions: this.txns.openCount,
      subscribers: this.scanners.size,
      groupCommit: { mode: this.pacer.overlap ? 'overlap' : 'merge', ...this.pacer.snapshot() },
    };
  }

  private onClose(replyTo: Ref<Reply<void>> | undefined): void {
    if (replyTo) this.closeWaiters.push(replyTo);
    if (this.state === 'closing') return;
    if (this.state === 'closed') {
      this.replyClosed();
      return;
    }
    const wasOpening = this.state === 'opening';
    this.state = 'closing';
    this.stopTicking();
    this.txns.close();
    const waiting = this.waitingForOpen;
    this.waitingForOpen = [];
    for (const m of waiting) this.replay(m); // answered with ON_SHUTDOWN
    if (wasOpening) {
      // The open may still complete: onOpened closes the log it brings.
      this.finishClose(false);
      return;
    }
    this.closeTimer = this.deps.clock.setTimeout(() => dispatch(this.self, { type: 'closeDeadline' }), this.deps.options.closeTimeoutMs);
    this.maybeFinishClose();
  }

  private maybeFinishClose(): void {
    if (this.state !== 'closing' && this.state !== 'fenced' && this.state !== 'failed') return;
    if (this.closeWaiters.length === 0 && this.state !== 'closing') return;
    if (this.inFlight.length > 0 || this.pending.length > 0) return;
    this.finishClose(false);
  }

  private finishClose(timedOut: boolean): void {
    if (this.state === 'closed') return;
    this.closeTimer?.cancel();
    if (timedOut) this.logger.warn('wal close timed out waiting for in-flight writes', { pchannel: this.pchannel, pending: this.pending.length });
    const err = new StreamingError(ErrorCode.ON_SHUTDOWN, `pchannel ${this.pchannel} closed`);
    for (const e of this.pending) e.done(failed(err));
    this.pending = [];
    for (const s of [...this.scanners]) s.fail(err);
    this.wab.close();
    this.stopTicking();
    this.state = 'closed';
    const log = this.log;
    this.log = undefined;
    const recovery = this.recoveryRef;
    this.recoveryRef = undefined;
    (recovery ? ask<RecoveryMsg, void>(recovery, (replyTo) => ({ type: 'close', replyTo }), this.deps.options.closeTimeoutMs + 1000, 'close recovery storage').catch(() => undefined) : Promise.resolve())
      .then(() => (log ? log.close() : undefined))
      .then(
      () => dispatch(this.self, { type: 'closed' }),
      (e: unknown) => {
        this.logger.warn('closing the log failed', { pchannel: this.pchannel, error: toStreamingError(e).message });
        dispatch(this.self, { type: 'closed' });
      },
    );
  }

  private onClosed(): void {
    this.logger.info('wal closed', { pchannel: this.pchannel, term: this.deps.channel.term });
    this.replyClosed();
  }

  private replyClosed(): void {
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) dispatch(w, { ok: true, value: undefined });
  }
}

/** Thrown out of the handler when the WAL can no longer serve: the supervisor decides (reopen, or give the pchannel up). */
export class WalCrash extends StreamingError {
  constructor(pchannel: string, cause: StreamingError) {
    super(cause.code, `wal ${pchannel} crashed: ${cause.message}`, { cause, retriable: cause.retriable, ...(cause.details ? { details: { ...cause.details } } : {}) });
    this.name = 'WalCrash';
  }
}

/**
 * A private copy the interceptors may fill in (the body is shared: it is never modified). Every
 * field the WAL fills (up to the id and size of the LogMessage it becomes) is there from the start,
 * so that the copies of all appends share one shape.
 */
function ownCopy(m: NewMessage | Message): Message {
  const c = { type: m.type, vchannel: m.vchannel, timetick: 0n, lastConfirmedId: '', term: 0, header: { ...m.header }, body: m.body, id: '', size: 0 } as LogMessage;
  if (m.txn !== undefined) c.txn = m.txn;
  if (m.idempotencyKey !== undefined) c.idempotencyKey = m.idempotencyKey;
  return c;
}

/**
 * Opens the log, writes the term's first TimeTick straight to the backend with a freshly synced
 * timetick (it proves the fence and puts every new timetick above all earlier terms), and rebuilds
 * the vchannel meta by replaying the log up to it.
 */
async function openSequence(deps: WalDeps): Promise<{ log: WalLog; firstTimeTick: LogMessage; recovered: RecoveryState; idempotency: IdempotencyWindow }> {
  const logger = deps.logger ?? createLogger('wal');
  const t0 = deps.clock.monotonic();
  const log = await deps.backend.open(deps.channel);
  try {
    const t1 = deps.clock.monotonic();
    deps.tso.sync();
    const timetick = await deps.tso.allocate();
    const tick: TimeTickMessage = { type: 'TimeTick', vchannel: '', timetick, lastConfirmedId: '', term: deps.channel.term, header: {}, body: {} };
    const bytes = encodeMessage(tick);
    const [id] = await log.append([bytes]);
    if (id === undefined) throw new StreamingError(ErrorCode.INNER, 'backend returned no id for the first TimeTick');
    const t2 = deps.clock.monotonic();
    const idempotency = new IdempotencyWindow(deps.options.idempotencyWindow);
    const { state, replayed } = await recover({
      pchannel: deps.channel.name,
      log,
      meta: deps.meta,
      untilId: id,
      clock: deps.clock,
      logger,
      ...(deps.onReplayProgress ? { onProgress: deps.onReplayProgress } : {}),
      onMessage: (m) => {
        if (m.idempotencyKey !== undefined) {
          idempotency.remember(m.idempotencyKey, { id: m.id, timetick: m.timetick, lastConfirmedId: m.lastConfirmedId, ...(m.txn ? { txn: m.txn } : {}) });
        }
      },
    });
    logger.debug('wal open phases', {
      pchannel: deps.channel.name,
      term: deps.channel.term,
      backendOpenMs: Math.round(t1 - t0),
      firstTimeTickMs: Math.round(t2 - t1),
      replayMs: Math.round(deps.clock.monotonic() - t2),
      replayed,
    });
    return { log, firstTimeTick: { ...tick, lastConfirmedId: id, id, size: bytes.length }, recovered: state, idempotency };
  } catch (e) {
    await log.close().catch(() => undefined);
    throw e;
  }
}

export interface SpawnWalOptions {
  name?: string;
  /**
   * Supervision of this WAL: called when its handler throws (a WalCrash, or a bug). The crashed
   * incarnation has already been abandoned; return the nact verdict (ctx.reset reopens it).
   */
  onCrash?: (error: unknown, ctx: { reset: symbol; stop: symbol; escalate: symbol }) => symbol | Promise<symbol>;
}

/** Spawns the WAL actor of one pchannel under `parent`; it starts opening at once. */
export function spawnWal(parent: Ref<unknown>, deps: WalDeps, opts: SpawnWalOptions = {}): Ref<WalMsg> {
  let current: WalCore | undefined;
  return spawn(
    parent as Ref<never>,
    (core: WalCore, msg: WalMsg) => {
      core.handle(msg);
      return core;
    },
    opts.name ?? `wal-${deps.channel.name}`,
    {
      initialStateFunc: (ctx) => (current = new WalCore(deps, ctx.self as Ref<WalMsg>)),
      onCrash: (_msg, error, ctx) => {
        current?.abandon();
        const verdict = opts.onCrash ? opts.onCrash(error, ctx as unknown as { reset: symbol; stop: symbol; escalate: symbol }) : ctx.stop;
        return verdict as symbol;
      },
    },
  );
}
