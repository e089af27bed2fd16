/**
 * The WAL backend: where a pchannel's log physically lives. Five things: open a pchannel at a term,
 * append, read with a deliver policy, truncate, close. Records are opaque bytes (encoded messages);
 * the backend never parses them. Every implementation passes test/conformance/wal-backend.suite.ts.
 */
import { invalidArgument } from '../../runtime/errors';
import type { MessageId } from '../../runtime/message/message-id';

export type AccessMode = 'rw' | 'ro';

export interface PChannelInfo {
  name: string;
  /** Fencing token; +1 on every (re)assignment. */
  term: number;
  accessMode: AccessMode;
}

export type DeliverPolicy =
  | { type: 'all' }
  /** Only what is appended after the read starts. */
  | { type: 'latest' }
  /** From `id`, inclusive. */
  | { type: 'startFrom'; id: MessageId }
  /** After `id`, exclusive. */
  | { type: 'startAfter'; id: MessageId };

export interface LogEntry {
  id: MessageId;
  data: Uint8Array;
  /**
   * The backend checked a checksum covering all of `data` as it read it (the local files' record
   * CRC): decoders may skip the message's own checksums. Absent: nothing was checked.
   */
  verified?: boolean;
}

export interface ReadOptions {
  policy: DeliverPolicy;
  /** Aborting ends the iteration (the pending `next()` resolves done). */
  signal?: AbortSignal;
  /**
   * readBatches only: the entries' data of a batch may be overwritten once the next batch is
   * asked for, so that the backend reads into the same memory again instead of new memory for
   * every batch. For a reader that copies what it keeps (the flush). A backend may ignore it.
   */
  transient?: boolean;
}

export interface WalBackend {
  /** Backend name, e.g. "local", "memory", "redis". */
  readonly name: string;
  /**
   * Opens a pchannel. In rw mode the term becomes the pchannel's current term; opening with a
   * term lower than the current one fails with CHANNEL_FENCED. ro mode never changes the term.
   */
  open(channel: PChannelInfo): Promise<WalLog>;
  /** Closes every log it opened and releases shared resources. Idempotent. */
  close(): Promise<void>;
}

export interface WalLog {
  readonly channel: PChannelInfo;
  /**
   * Appends records in order, atomically as one batch when the backend can (one group commit),
   * and resolves with their ids once durable under the configured policy. If a newer term owns the
   * pchannel it rejects with CHANNEL_FENCED and writes nothing. Rejects with INVALID_ARGUMENT in ro mode.
   */
  append(records: readonly Uint8Array[]): Promise<MessageId[]>;
  /**
   * Reads entries in id order. The iteration blocks at the tail waiting for new entries and ends
   * only when the signal aborts or the log/backend closes. Each call is an independent reader.
   */
  read(opts: ReadOptions): AsyncIterable<LogEntry>;
  /**
   * Optional: read(), the entries handed out in batches as the backend gets them (never empty), for
   * a reader that goes through a long range (the flush) and pays one await per batch, not per entry.
   */
  readBatches?(opts: ReadOptions): AsyncIterable<readonly LogEntry[]>;
  /** Discards entries with id < `upTo` (a backend may keep more, never less than asked to keep). */
  truncate(upTo: MessageId): Promise<void>;
  /** Oldest retained entry id, or undefined when the log is empty. */
  oldestId(): Promise<MessageId | undefined>;
  /** Stops appends and ends this log's readers. Idempotent. */
  close(): Promise<void>;
}

/** INVALID_ARGUMENT unless `channel` names a pchannel, a term ≥ 0 and rw or ro: what every backend's open() checks first. */
export function validateChannel(channel: PChannelInfo): void {
  if (channel === null || typeof channel !== 'object') throw invalidArgument('pchannel info must be an object');
  if (typeof channel.name !== 'string' || channel.name.length === 0) throw invalidArgument('pchannel name must be non-empty');
  if (!Number.isSafeInteger(channel.term) || channel.term < 0) {
    throw invalidArgument(`term of pchannel ${channel.name} must be a non-negative integer`, { term: channel.term });
  }
  const modes: readonly AccessMode[] = ['rw', 'ro'];
  if (!modes.includes(channel.accessMode)) throw invalidArgument('access mode must be rw or ro', { accessMode: channel.accessMode });
}

/**
 * Hands the entries of `log` from `opts.policy` on to `take` until it returns false, in batches
 * when the log offers readBatches (a long range is hundreds of thousands of entries: one await per
 * batch, not per entry), one by one otherwise. The iteration is ended (aborted) when it returns.
 * With `opts.transient`, `take` must copy whatever it keeps of an entry.
 */
export async function forEachEntry(log: WalLog, opts: ReadOptions, take: (entry: LogEntry) => boolean): Promise<void> {
  if (opts.signal?.aborted) return;
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  opts.signal?.addEventListener('abort', stop, { once: true });
  const read: ReadOptions = { ...opts, signal: abort.signal };
  try {
    if (log.readBatches) {
      for await (const batch of log.readBatches(read)) for (const entry of batch) if (!take(entry)) return;
    } else {
      for await (const entry of log.read(read)) if (!take(entry)) return;
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    abort.abort();
  }
}
