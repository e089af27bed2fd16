/**
 * The append side of one rw WalLog: a queue of append() calls drained by one pump, so that there
 * is one write(2) in flight per pchannel and id order equals call order. Each write is fenced
 * twice: before (so a known-fenced writer writes nothing) and after it is durable (so an
 * acknowledgement is never given once a newer rw open may have cut the log). Lives from the rw
 * open to close(); owns the active segment's fd.
 *
 * Under fsync `always` writes and syncs overlap: a group is written as soon as it is taken, and
 * one fdatasync at a time makes durable every group written before it started (sync coalescing).
 * While a sync is in flight the next groups are written behind it and wait for the next sync, so
 * the disk's flush and the writing of the next appends run side by side. Groups are acknowledged
 * in write order, once a sync that started after their write completes.
 */
import { ChannelFencedError, ErrorCode, StreamingError } from '../../../runtime/errors';
import { type MessageId, sequenceId } from '../../../runtime/message/message-id';
import type { TimerHandle } from '../../../runtime/clock';
import type { ChannelState, WriterView } from './channel-state';
import { closeFd, fdatasync, fsyncDir, ftruncate, openFd, writeAllAt } from './fs-io';
import type { ResolvedLocalOptions } from './options';
import { encodeRecordsInto, encodedBytes } from './record-format';
import { type SegmentFile, segmentFile, segmentPath } from './segment-files';

interface PendingAppend {
  records: readonly Uint8Array[];
  bytes: number;
  resolve(ids: MessageId[]): void;
  reject(e: unknown): void;
}

/** A group written under `always` that waits for a sync: its ids and the sequence after it. */
interface WrittenGroup {
  group: PendingAppend[];
  ids: MessageId[][];
  end: number;
}

interface ActiveSegment {
  file: SegmentFile;
  fd: number;
  /** Bytes of complete records written to it. */
  bytes: number;
}

/** What the writers of one backend did since it was created (benchmarks, status). */
export interface LocalWalStats {
  /** write(2) calls, each carrying one or more coalesced append() calls. */
  writes: number;
  /** fdatasync calls of appends (the background ones under `interval` included). */
  syncs: number;
  /** Records written. */
  records: number;
}

/** Upper bound of one coalesced write, in bytes. */
const MAX_GROUP_BYTES = 16 * 1024 * 1024;

export class SegmentWriter implements WriterView {
  durableNext: number;
  private nextSeq: number;
  private queue: PendingAppend[] = [];
  private pumping: Promise<void> | undefined;
  private fenced = false;
  private broken: StreamingError | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private dirty = false;
  private syncRequested = false;
  /** `always`: groups written and not yet durable, oldest first. */
  private unsynced: WrittenGroup[] = [];
  /** `always`: the fdatasync in flight (at most one), which acknowledges the groups it covers. */
  private syncing: Promise<void> | undefined;
  private readonly timer: TimerHandle | undefined;

  constructor(
    private readonly state: ChannelState,
    private readonly term: number,
    readonly epoch: number,
    private active: ActiveSegment,
    private readonly opts: ResolvedLocalOptions,
    private readonly stats: LocalWalStats,
  ) {
    this.nextSeq = active.file.firstSeq;
    this.durableNext = this.nextSeq;
    if (opts.fsync === 'interval') {
      this.timer = opts.clock.setInterval(() => {
        if (!this.dirty) return;
        this.syncRequested = true;
        this.kick();
      }, opts.fsyncIntervalMs);
    }
  }

  isLive(): boolean {
    return !this.closed && !this.fenced && this.broken === undefined && this.state.latestEpoch === this.epoch;
  }

  markFenced(): void {
    this.fenced = true;
  }

  append(records: readonly Uint8Array[]): Promise<MessageId[]> {
    if (this.closed) return Promise.reject(onShutdown(this.state.pchannel));
    if (this.broken) return Promise.reject(this.broken);
    if (this.fenced || this.state.latestEpoch !== this.epoch) {
      this.fenced = true;
      return this.fencedError().then((e) => Promise.reject(e));
    }
    let bytes: number;
    try {
      bytes = encodedBytes(records);
    } catch (e) {
      return Promise.reject(e);
    }
    if (records.length === 0) return Promise.resolve([]);
    return new Promise<MessageId[]>((resolve, reject) => {
      this.queue.push({ records, bytes, resolve, reject });
      this.kick();
    });
  }

  /** Throws CHANNEL_FENCED when a newer rw open exists (in this process or any other). */
  async checkFence(): Promise<void> {
    if (this.superseded()) throw await this.fencedError();
  }

  /** Stops intake, drains accepted appends, syncs, releases the fd. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      while (this.pumping) await this.pumping;
      await this.drainSyncs();
      this.timer?.cancel();
      if (this.dirty && !this.broken) {
        this.dirty = false;
        await fdatasync(this.active.fd).catch((e: unknown) =>
          this.opts.logger.warn('fdatasync on close failed', { pchannel: this.state.pchannel, error: String(e) }),
        );
      }
      await closeFd(this.active.fd).catch(() => undefined);
      if (this.state.writer === this) this.state.writer = undefined;
      this.state.notify();
    })();
    return this.closing;
  }

  private superseded(): boolean {
    if (this.fenced) return true;
    if (this.state.latestEpoch !== this.epoch || !this.state.terms.isLatestSync(this.epoch)) this.fenced = true;
    return this.fenced;
  }

  private async fencedError(): Promise<ChannelFencedError> {
    const current = this.state.latestEpoch !== this.epoch ? this.state.latestTerm : await this.state.terms.currentTerm();
    return new ChannelFencedError(this.state.pchannel, this.term, current);
  }

  private kick(): void {
    if (this.pumping) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      if (this.queue.length > 0 || this.syncRequested) this.kick();
    });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 || this.syncRequested) {
      if (this.syncRequested) {
        this.syncRequested = false;
        await this.syncIfDirty();
        continue;
      }
      await this.writeGroup(this.takeGroup());
    }
  }

  /** The queued calls that share the next write(2) (and fdatasync under `always`). */
  private takeGroup(): PendingAppend[] {
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.bytes <= MAX_GROUP_BYTES)) {
      bytes += this.queue[n]!.bytes;
      n++;
    }
    return this.queue.splice(0, n);
  }

  private async writeGroup(group: PendingAppend[]): Promise<void> {
    const fail = (e: unknown): void => {
      for (const p of group) p.reject(e);
    };
    if (this.broken) return fail(this.broken);
    // Fence before writing: a writer known to be fenced writes nothing.
    if (this.superseded()) return fail(await this.fencedError());
    let total = 0;
    for (const p of group) total += p.bytes;
    if (this.active.bytes > 0 && this.active.bytes + total > this.opts.segmentBytes) {
      try {
        // Every group written to the old file is durable (and answered) before the next file exists.
        await this.drainSyncs();
        if (this.broken) return fail(this.broken);
        if (this.fenced) return fail(await this.fencedError());
        await this.rollover();
      } catch (e) {
        return fail(this.markBroken('segment rollover failed', e));
      }
    }
    const buf = Buffer.allocUnsafe(total);
    let off = 0;
    for (const p of group) off = encodeRecordsInto(buf, off, p.records);

    const { fd } = this.active;
    const at = this.active.bytes;
    try {
      await writeAllAt(fd, buf, at);
      this.stats.writes++;
    } catch (e) {
      // Undo a partial write, so that no prefix of the batch turns into records on recovery.
      try {
        await ftruncate(fd, at);
      } catch (e2) {
        return fail(this.markBroken('write failed and could not be undone', e2));
      }
      this.state.undoneWrites++;
      return fail(new StreamingError(ErrorCode.INNER, `append to pchannel ${this.state.pchannel} failed: ${String(e)}`, { cause: e }));
    }
    this.active.bytes = at + total;
    // A sync that failed while this write ran broke the handle: nothing written after it is acknowledged.
    if (this.broken) return fail(this.broken);
    let seq = this.nextSeq;
    const ids: MessageId[][] = new Array<MessageId[]>(group.length);
    for (let g = 0; g < group.length; g++) {
      const n = group[g]!.records.length;
      const groupIds = new Array<MessageId>(n);
      for (let i = 0; i < n; i++) groupIds[i] = sequenceId(seq++);
      ids[g] = groupIds;
    }
    this.stats.records += seq - this.nextSeq;
    this.nextSeq = seq;
    if (this.opts.fsync === 'interval') {
      this.dirty = true;
      await this.acknowledge([{ group, ids, end: seq }]);
      return;
    }
    this.unsynced.push({ group, ids, end: seq });
    this.startSync();
  }

  /** Starts an fdatasync covering every group written so far, unless one is in flight (its completion starts the next). */
  private startSync(): void {
    if (this.syncing || this.unsynced.length === 0) return;
    const covered = this.unsynced;
    this.unsynced = [];
    if (this.broken) {
      for (const w of covered) for (const p of w.group) p.reject(this.broken);
      return;
    }
    this.syncing = this.syncThenAcknowledge(this.active.fd, covered).finally(() => {
      this.syncing = undefined;
      this.startSync();
    });
  }

  private async syncThenAcknowledge(fd: number, covered: WrittenGroup[]): Promise<void> {
    try {
      await fdatasync(fd);
      this.stats.syncs++;
    } catch (e) {
      // After a failed fsync the page cache state is unknown: stop using this handle.
      const err = this.markBroken('fdatasync failed', e);
      for (const w of [...covered, ...this.unsynced.splice(0)]) for (const p of w.group) p.reject(err);
      return;
    }
    await this.acknowledge(covered);
  }

  /** Answers durable groups, in order. */
  private async acknowledge(done: WrittenGroup[]): Promise<void> {
    // Fence after the write is durable: acknowledge only if no newer rw open exists now. Then the
    // write completed before that open's fence point and its recovery scan counts these records.
    if (this.superseded()) {
      const err = await this.fencedError();
      for (const w of done) for (const p of w.group) p.reject(err);
      return;
    }
    this.durableNext = done[done.length - 1]!.end;
    this.state.notify();
    for (const w of done) for (let i = 0; i < w.group.length; i++) w.group[i]!.resolve(w.ids[i]!);
  }

  /** Waits until every group written is durable and answered (or failed). */
  private async drainSyncs(): Promise<void> {
    for (;;) {
      if (this.syncing) await this.syncing;
      else if (this.unsynced.length > 0) this.startSync();
      else return;
    }
  }

  private async rollover(): Promise<void> {
    const old = this.active;
    if (this.dirty) {
      // The old file must be durable before the next one exists, or a power loss could leave a gap.
      this.dirty = false;
      await fdatasync(old.fd);
    }
    const file = segmentFile(this.nextSeq, this.epoch);
    const fd = await openFd(segmentPath(this.state.dir, file), 'wx');
    try {
      await fsyncDir(this.state.dir);
    } catch (e) {
      await closeFd(fd).catch(() => undefined);
      throw e;
    }
    this.active = { file, fd, bytes: 0 };
    await closeFd(old.fd).catch(() => undefined);
    this.state.notify();
  }

  private async syncIfDirty(): Promise<void> {
    if (!this.dirty || this.broken) return;
    this.dirty = false;
    try {
      await fdatasync(this.active.fd);
      this.stats.syncs++;
    } catch (e) {
      this.markBroken('background fdatasync failed', e);
    }
  }

  private markBroken(what: string, cause: unknown): StreamingError {
    this.broken ??= new StreamingError(
      ErrorCode.UNRECOVERABLE,
      `wal log of pchannel ${this.state.pchannel} is unusable (${what}); reopen it to recover`,
      { cause, details: { pchannel: this.state.pchannel } },
    );
    this.opts.logger.warn('local wal writer broken', { pchannel: this.state.pchannel, what, error: String(cause) });
    this.state.notify();
    return this.broken;
  }
}

export function onShutdown(pchannel: string): StreamingError {
  return new StreamingError(ErrorCode.ON_SHUTDOWN, `wal log of pchannel ${pchannel} is closed`, { details: { pchannel } });
}
