/**
 * One reader of a local pchannel: walks the live segment files in order with a chunked cursor,
 * then waits at the tail. What it may deliver at the tail:
 * - when the writer of the tail file lives in this backend instance: records below the writer's
 *   durable position (woken by the writer; a slow poll notices a writer in another process taking over);
 * - otherwise (writer in another process, or gone): complete, valid records that were read while
 *   no newer rw open existed (one stat after the read). A record read like that was written before
 *   any newer open's fence point, so that open's recovery scan counts it: it can never be cut away.
 *   Records of a fenced writer beyond the cut are never delivered. New data is found by polling.
 * Lives from read() until the iteration ends (abort, log close, backend close, or an error).
 */
import type { LogEntry } from '../backend';
import { ErrorCode, StreamingError } from '../../../runtime/errors';
import { sequenceId } from '../../../runtime/message/message-id';
import type { ChannelState, WriterView } from './channel-state';
import { errnoCode, openFd } from './fs-io';
import type { ResolvedLocalOptions } from './options';
import { CursorClosedError, SegmentCursor } from './segment-cursor';
import { type ChannelView, locate, readChannelView, scanSegment, segmentPath, successorFirst } from './segment-files';

/** Where a read starts: a sequence number, the oldest retained entry, or the tail at read() time. */
export type ReadStart = { kind: 'seq'; seq: number } | { kind: 'oldest' } | { kind: 'latest' };

export interface ReaderContext {
  readonly state: ChannelState;
  readonly opts: ResolvedLocalOptions;
  /** The log or the backend closed. */
  stopped(): boolean;
  /** Calls `fn` when the log or backend closes; returns an unsubscribe. */
  onStop(fn: () => void): () => void;
}

/** Most entries taken from one peek. */
const MAX_PEEK = 4096;

interface Current {
  cursor: SegmentCursor;
  /** Exclusive end of the file's records (next live file's firstSeq), unknown for the last file. */
  limit: number | undefined;
}

export class LocalReader {
  private cur: Current | undefined;
  private next: number | undefined;
  /** Latest was asked for but the tail was not known at read() time. */
  private latestPending = false;
  private delivered = false;
  /** ChannelState.undoneWrites when this reader last looked. */
  private undoneSeen: number;
  private closed = false;

  constructor(
    private readonly ctx: ReaderContext,
    start: ReadStart,
    private readonly signal: AbortSignal | undefined,
    /** Called once when the iteration has ended and released its file. */
    private readonly onDone: () => void = () => undefined,
    /** Spare chunk buffers of a transient reader (ReadOptions.transient), shared by its cursors. */
    private readonly spareChunks?: Buffer[],
  ) {
    this.undoneSeen = ctx.state.undoneWrites;
    if (start.kind === 'seq') this.next = start.seq;
    else if (start.kind === 'latest') {
      // Fixed now when a writer of this instance knows the tail; otherwise found on the first next().
      const w = ctx.state.writer;
      if (w && w.isLive()) this.next = w.durableNext;
      else this.latestPending = true;
    }
  }

  /** Releases the file. Safe while the iteration is suspended or in a read. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const cur = this.cur;
    this.cur = undefined;
    if (cur) await cur.cursor.close();
  }

  /** The entries one at a time (WalLog.read). */
  async *run(): AsyncGenerator<LogEntry> {
    for await (const batch of this.runBatches()) {
      for (const entry of batch) {
        yield entry;
        if (this.stopped()) return;
      }
    }
  }

  /**
   * The entries in batches, as they come out of the file (up to one peek each, never empty): for a
   * reader that goes through many entries (a flush), one await per batch instead of one per entry.
   */
  async *runBatches(): AsyncGenerator<LogEntry[]> {
    try {
      while (!this.stopped()) {
        if (!this.cur) {
          if (!(await this.openCurrent())) await this.wait(this.ctx.opts.pollIntervalMs);
          continue;
        }
        const cur = this.cur;
        const file = cur.cursor.file;
        const local = this.localWriter(file.epoch);
        const bound = cur.limit ?? (local ? local.durableNext : Number.MAX_SAFE_INTEGER);
        const undone = this.ctx.state.undoneWrites;
        if (undone !== this.undoneSeen) {
          // Bytes buffered before a write was undone may be of records that never were.
          this.undoneSeen = undone;
          cur.cursor.dropBuffered();
        }
        if (cur.cursor.seq < Math.min(this.next!, bound)) await this.skipToNext(cur, bound);
        const { entries, stop } = await cur.cursor.peek(bound, MAX_PEEK);
        if (this.stopped()) return;

        if (entries.length > 0) {
          let n = entries.length;
          if (cur.limit === undefined && !local && !this.ctx.state.terms.isLatestSync(file.epoch)) {
            // A newer rw open exists: only what it counted before its cut belongs to the log.
            const limit = await this.refreshLimit(cur);
            if (limit === 'relocate') continue;
            if (limit === undefined) {
              await this.wait(this.ctx.opts.pollIntervalMs); // that open has not cut yet
              continue;
            }
            n = Math.min(n, limit - cur.cursor.seq);
            if (n <= 0) continue;
          }
          const first = cur.cursor.seq;
          cur.cursor.advance(n);
          const from = Math.max(0, this.next! - first);
          if (from >= n) continue;
          this.next = first + n;
          this.delivered = true;
          yield from === 0 && n === entries.length ? entries : entries.slice(from, n);
          if (this.stopped()) return;
          continue;
        }

        // Nothing deliverable at the cursor.
        if (cur.limit !== undefined) {
          if (cur.cursor.seq >= cur.limit) {
            await this.closeCurrent();
            continue;
          }
          throw this.corrupt(file.name, cur.cursor.seq, `file ends (${stop}) before its last record ${cur.limit - 1}`);
        }
        if (local) {
          if (stop === 'limit') {
            if (local.durableNext > cur.cursor.seq) continue;
            await this.waitForLocalWriter(local, cur.cursor.seq);
            continue;
          }
          if (stop === 'corrupt') throw this.corrupt(file.name, cur.cursor.seq, 'acknowledged record does not check out');
          // The file ended below the writer's durable position: it rolled over to a new file.
          const limit = await this.refreshLimit(cur);
          if (limit === undefined) await this.wait(this.ctx.opts.pollIntervalMs);
          continue;
        }
        // Tail without an in-process writer: a successor may have appeared (rollover or a cut).
        const limit = await this.refreshLimit(cur);
        if (limit === undefined) await this.wait(this.ctx.opts.pollIntervalMs);
      }
    } catch (e) {
      if (e instanceof CursorClosedError && this.stopped()) return;
      throw e;
    } finally {
      await this.close();
      this.onDone();
    }
  }

  /**
   * Moves the cursor to `next` (the start of the read, or past what a relocation skips) without
   * building entries for the records before it; never past `bound` (the in-process writer's durable
   * position: bytes beyond it may still be undone). In a sealed file (its successor known) records
   * are passed over by their lengths; in the last file only over records that check out, as peek
   * would. Records before `next` are never delivered, so passing over them changes nothing else.
   */
  private async skipToNext(cur: Current, bound: number): Promise<void> {
    await cur.cursor.skip(Math.min(this.next!, bound), cur.limit === undefined);
  }

  private stopped(): boolean {
    return this.closed || this.ctx.stopped() || this.signal?.aborted === true;
  }

  private localWriter(epoch: number): WriterView | undefined {
    const w = this.ctx.state.writer;
    return w !== undefined && w.epoch === epoch && w.isLive() ? w : undefined;
  }

  private view(): Promise<ChannelView> {
    return readChannelView(this.ctx.state.dir);
  }

  /**
   * Looks at the directory again for the current (so far last) file: sets and returns its limit
   * when a successor exists; 'relocate' (current file released) when the file is no longer live,
   * e.g. a stray file a fenced writer created after a newer open cut the log: nothing read from it
   * was delivered unverified, and reading goes on from `next` in the live files.
   */
  private async refreshLimit(cur: Current): Promise<number | undefined | 'relocate'> {
    const view = await this.view();
    const file = cur.cursor.file;
    if (!view.live.some((f) => f.name === file.name)) {
      await this.closeCurrent();
      return 'relocate';
    }
    const limit = successorFirst(view, file);
    if (limit !== undefined) cur.limit = limit;
    return limit;
  }

  /** Opens the live file that holds `next`; false when there is none yet. */
  private async openCurrent(): Promise<boolean> {
    for (;;) {
      const view = await this.view();
      if (this.stopped()) return false;
      const oldest = view.live[0];
      if (!oldest) return false;
      if (this.next === undefined) {
        this.next = this.latestPending ? await this.tailSeq(view) : oldest.firstSeq;
        this.latestPending = false;
      }
      if (this.next < oldest.firstSeq) {
        if (this.delivered) {
          throw new StreamingError(ErrorCode.UNRECOVERABLE, `pchannel ${this.ctx.state.pchannel} was truncated under a reader`, {
            details: { pchannel: this.ctx.state.pchannel, nextId: sequenceId(this.next), oldestId: sequenceId(oldest.firstSeq) },
          });
        }
        this.next = oldest.firstSeq;
      }
      const i = locate(view, this.next);
      const file = view.live[i]!;
      let fd: number;
      try {
        fd = await openFd(segmentPath(this.ctx.state.dir, file), 'r');
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') continue; // truncated meanwhile: look again
        throw e;
      }
      const cursor = new SegmentCursor(fd, file, this.ctx.opts.readChunkBytes, this.spareChunks);
      if (this.stopped()) {
        await cursor.close();
        return false;
      }
      this.cur = { cursor, limit: view.live[i + 1]?.firstSeq };
      return true;
    }
  }

  private async closeCurrent(): Promise<void> {
    const cur = this.cur;
    this.cur = undefined;
    if (cur) await cur.cursor.close();
  }

  /** Sequence number after the last record on disk (for Latest without an in-process writer). */
  private async tailSeq(view: ChannelView): Promise<number> {
    const last = view.live[view.live.length - 1]!;
    const w = this.localWriter(last.epoch);
    if (w) return w.durableNext;
    const scan = await scanSegment(segmentPath(this.ctx.state.dir, last), last, this.ctx.opts.readChunkBytes);
    return last.firstSeq + scan.count;
  }

  /** Waits until the in-process writer moves past `seq`, stops being live, or something else changes. */
  private async waitForLocalWriter(w: WriterView, seq: number): Promise<void> {
    const slowPoll = this.ctx.opts.pollIntervalMs * 10;
    for (;;) {
      const why = await this.wait(slowPoll);
      if (why !== 'timer' || this.stopped()) return;
      if (w.durableNext > seq || !w.isLive()) return;
      // Only a writer in another process can take over silently; one stat notices it.
      if (!this.ctx.state.terms.isLatestSync(w.epoch)) {
        w.markFenced();
        return;
      }
    }
  }

  /** Resolves on a change notification, a stop, an abort, or after `ms`. */
  private wait(ms: number): Promise<'change' | 'timer' | 'stop'> {
    if (this.stopped()) return Promise.resolve('stop');
    return new Promise((resolve) => {
      let done = false;
      const finish = (why: 'change' | 'timer' | 'stop'): void => {
        if (done) return;
        done = true;
        unsubscribe();
        unstop();
        timer.cancel();
        this.signal?.removeEventListener('abort', onAbort);
        resolve(why);
      };
      const onAbort = (): void => finish('stop');
      const unsubscribe = this.ctx.state.onChange(() => finish('change'));
      const unstop = this.ctx.onStop(() => finish('stop'));
      const timer = this.ctx.opts.clock.setTimeout(() => finish('timer'), ms);
      this.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private corrupt(file: string, seq: number, reason: string): StreamingError {
    return new StreamingError(ErrorCode.UNRECOVERABLE, `pchannel ${this.ctx.state.pchannel}: corrupt segment ${file} at record ${seq}: ${reason}`, {
      details: { pchannel: this.ctx.state.pchannel, file, id: sequenceId(seq), reason },
    });
  }
}
