/**
 * A WalLog over one pchannel directory: appends go through the SegmentWriter (rw only), each
 * read() is a LocalReader, truncate deletes whole segment files. Lives from open() to close().
 */
import * as path from 'node:path';
import type { DeliverPolicy, LogEntry, PChannelInfo, ReadOptions, WalLog } from '../backend';
import { type MessageId, sequenceId, sequenceOf } from '../../../runtime/message/message-id';
import { assertNever, invalidArgument } from '../../../runtime/errors';
import type { ChannelState } from './channel-state';
import { closeFd, errnoCode, fsyncDir, openFd, unlinkIfExists } from './fs-io';
import { LocalReader, type ReadStart, type ReaderContext } from './local-reader';
import type { ResolvedLocalOptions } from './options';
import { SegmentCursor } from './segment-cursor';
import { lowMarkName, readChannelView, segmentPath } from './segment-files';
import { type SegmentWriter, onShutdown } from './segment-writer';

/** What a log needs from its backend. */
export interface LogOwner {
  readonly closed: boolean;
  forget(log: LocalWalLog): void;
}

export class LocalWalLog implements WalLog {
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly readers = new Set<LocalReader>();
  private readonly stopListeners = new Set<() => void>();
  private readonly readerCtx: ReaderContext;

  constructor(
    readonly channel: PChannelInfo,
    private readonly state: ChannelState,
    private readonly opts: ResolvedLocalOptions,
    private readonly owner: LogOwner,
    private readonly writer: SegmentWriter | undefined,
  ) {
    this.readerCtx = {
      state,
      opts,
      stopped: () => this.closed || this.owner.closed,
      onStop: (fn) => {
        this.stopListeners.add(fn);
        return () => this.stopListeners.delete(fn);
      },
    };
  }

  append(records: readonly Uint8Array[]): Promise<MessageId[]> {
    if (!this.writer) return Promise.reject(readOnly(this.channel.name, 'append'));
    if (this.closed) return Promise.reject(onShutdown(this.channel.name));
    return this.writer.append(records);
  }

  read(opts: ReadOptions): AsyncIterable<LogEntry> {
    return this.newReader(opts, false).run();
  }

  /**
   * read(), the entries in batches of up to one chunk's worth (WalLog.readBatches); `transient`:
   * the reader reads chunk after chunk into the same few buffers.
   */
  readBatches(opts: ReadOptions): AsyncIterable<LogEntry[]> {
    return this.newReader(opts, opts.transient === true).runBatches();
  }

  /** The start is fixed here (matters for Latest); the files are opened on the first next(). */
  private newReader(opts: ReadOptions, transient: boolean): LocalReader {
    const reader: LocalReader = new LocalReader(this.readerCtx, startOf(opts.policy), opts.signal, () => this.readers.delete(reader), transient ? [] : undefined);
    this.readers.add(reader);
    return reader;
  }

  async truncate(upTo: MessageId): Promise<void> {
    if (!this.writer) throw readOnly(this.channel.name, 'truncate');
    if (this.closed) throw onShutdown(this.channel.name);
    const upToSeq = parseId(upTo);
    await this.writer.checkFence();
    await truncateFiles(this.state.dir, upToSeq);
  }

  async oldestId(): Promise<MessageId | undefined> {
    const view = await readChannelView(this.state.dir);
    const first = view.live[0];
    if (!first) return undefined;
    // Every live file but the last holds at least one record; the last may be empty.
    if (view.live.length > 1) return sequenceId(first.firstSeq);
    const w = this.state.writer;
    if (w && w.isLive() && w.epoch === first.epoch) return w.durableNext > first.firstSeq ? sequenceId(first.firstSeq) : undefined;
    let fd: number;
    try {
      fd = await openFd(segmentPath(this.state.dir, first), 'r');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return this.oldestId();
      throw e;
    }
    const cursor = new SegmentCursor(fd, first, 64 * 1024);
    try {
      const { entries } = await cursor.peek(Number.MAX_SAFE_INTEGER, 1);
      return entries.length > 0 ? sequenceId(first.firstSeq) : undefined;
    } finally {
      await cursor.close();
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      for (const fn of [...this.stopListeners]) fn();
      this.stopListeners.clear();
      await this.writer?.close();
      await Promise.all(
        [...this.readers].map((r) =>
          r.close().catch((e: unknown) => this.opts.logger.warn('closing a reader failed', { pchannel: this.channel.name, error: String(e) })),
        ),
      );
      this.readers.clear();
      this.owner.forget(this);
    })();
    return this.closing;
  }
}

/**
 * Deletes the live files whose every record is < upToSeq (never the last one) and every dead
 * file. The new low-water mark is made durable first, so that a file below it can never count as
 * live again, whatever a fenced writer still creates.
 */
async function truncateFiles(dir: string, upToSeq: number): Promise<void> {
  const view = await readChannelView(dir);
  if (view.live.length === 0) return;
  let keep = view.live.length - 1;
  for (let i = 0; i < view.live.length - 1; i++) {
    if (view.live[i + 1]!.firstSeq > upToSeq) {
      keep = i;
      break;
    }
  }
  const doomed = view.live.slice(0, keep);
  const low = view.live[keep]!.firstSeq;
  if (doomed.length > 0 && low > view.lowWatermark) {
    const mark = path.join(dir, lowMarkName(low));
    try {
      await closeFd(await openFd(mark, 'wx'));
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    await fsyncDir(dir);
  }
  let removed = false;
  for (const f of [...view.dead, ...doomed]) removed = (await unlinkIfExists(segmentPath(dir, f))) || removed;
  for (const m of view.lowMarks) if (m.seq < low) removed = (await unlinkIfExists(path.join(dir, m.name))) || removed;
  if (removed) await fsyncDir(dir);
}

function startOf(policy: DeliverPolicy): ReadStart {
  switch (policy.type) {
    case 'all':
      return { kind: 'oldest' };
    case 'latest':
      return { kind: 'latest' };
    case 'startFrom':
      return { kind: 'seq', seq: parseId(policy.id) };
    case 'startAfter':
      return { kind: 'seq', seq: parseId(policy.id) + 1 };
    default:
      return assertNever(policy, 'deliver policy');
  }
}

function parseId(id: MessageId): number {
  if (typeof id !== 'string' || !/^[0-9a-f]{16}$/.test(id)) throw invalidArgument(`not a message id of the local backend: ${JSON.stringify(id)}`, { id });
  return sequenceOf(id);
}

function readOnly(pchannel: string, op: string): Error {
  return invalidArgument(`cannot ${op} pchannel ${pchannel}: opened read-only`, { pchannel, op });
}
