/**
 * One reader of a pchannel's stream: catches up with chunked XRANGE on the shared command connection,
 * then tails with XREAD BLOCK on a dedicated connection (a blocked connection cannot serve anyone
 * else). Lives from read() until the iteration ends: abort, log close, backend close, the consumer's
 * `return()`, or an error.
 *
 * Catch-up keeps one chunk of read-ahead: the next XRANGE is sent as soon as a full chunk arrives,
 * so its round trip overlaps with delivering the current chunk.
 *
 * Promptness: every wait is raced against the reader's stop signal, and stopping disconnects the
 * dedicated connection at once (the server drops the blocked XREAD), so abort/close never wait for
 * a BLOCK timeout or a Redis reply. There is no polling: an idle tail issues one XREAD per
 * `tailBlockMs`.
 */
import type { Redis } from 'ioredis';
import type { LogEntry } from '../backend';
import { ErrorCode, StreamingError, isStreamingError } from '../../../runtime/errors';
import { isConnectionLost } from './error-codes';
import { RECORD_FIELD } from './keys';
import { MAX_STREAM_ID, predecessorStreamId, toMessageId } from './stream-id';

/** Where reading goes on: at a stream id (inclusive) or after it (exclusive). */
export type ReadPosition = { readonly kind: 'from'; readonly streamId: string } | { readonly kind: 'after'; readonly streamId: string };

/** The start of a read, fixed when read() is called (Latest needs one round trip to learn the tail). */
export interface ReadStart {
  readonly position: ReadPosition;
  /** Skip catch-up: nothing is known to be there (Latest). */
  readonly tailOnly: boolean;
}

/** A dedicated connection held by one tail reader. */
export interface TailConnection {
  readonly connection: Redis;
  /** Sends a command on `connection`; rejected (connection lost) if the connection drops before its reply. */
  track<T>(send: () => Promise<T>): Promise<T>;
  /** Disconnects and frees the reader slot. Idempotent. */
  release(): void;
}

/** What a reader needs from its log and backend. */
export interface ReaderContext {
  readonly pchannel: string;
  readonly streamKey: string;
  /** The shared command connection (catch-up reads). */
  readonly client: Redis;
  /** Sends a command on `client`; rejected (connection lost) if the connection drops before its reply. */
  track<T>(send: () => Promise<T>): Promise<T>;
  readonly readChunk: number;
  readonly tailBlockMs: number;
  /** A new dedicated connection; throws RESOURCE_EXHAUSTED when the backend's reader cap is reached. */
  openTailConnection(): TailConnection;
  /** The log or the backend closed. */
  stopped(): boolean;
  /** Calls `fn` once when the log or the backend closes; returns an unsubscribe. */
  onStop(fn: () => void): () => void;
}

const STOP = Symbol('stop');
const RECORD_FIELD_BYTE = RECORD_FIELD.charCodeAt(0);
type Stop = typeof STOP;

/** A stream entry as ioredis returns it in buffer mode: [id, [field, value, …]]. */
type RawEntry = [Buffer, Buffer[]];

/** Bytes one read should bring at most, about (see RedisReader.fitChunkToBudget). */
export const READ_BUDGET_BYTES = 16 * 1024 * 1024;
/** Entries the first read asks for, before any size is known (at most 16 × 4 MiB messages). */
export const FIRST_READ_COUNT = 16;

export class RedisReader {
  private tail: TailConnection | undefined;
  /** Entries the next read asks for (COUNT). */
  private chunk: number;
  private interrupted = false;
  private wakeStop!: (s: Stop) => void;
  private readonly stopPromise = new Promise<Stop>((resolve) => (this.wakeStop = resolve));

  constructor(
    private readonly ctx: ReaderContext,
    private readonly start: Promise<ReadStart>,
    private readonly signal: AbortSignal | undefined,
    /** Called once when the iteration has ended and released its connection. */
    private readonly onDone: () => void = () => undefined,
  ) {
    // Settled here so that a reader that is never iterated leaves no unhandled rejection.
    start.catch(() => undefined);
    this.chunk = Math.min(ctx.readChunk, FIRST_READ_COUNT);
  }

  /** Ends the reader from outside (log or backend close): wakes any wait and drops the tail connection. */
  interrupt(): void {
    if (this.interrupted) return;
    this.interrupted = true;
    this.wakeStop(STOP);
    this.tail?.release();
  }

  async *run(): AsyncGenerator<LogEntry> {
    const onAbort = (): void => this.interrupt();
    this.signal?.addEventListener('abort', onAbort, { once: true });
    const unsubscribe = this.ctx.onStop(() => this.interrupt());
    try {
      if (this.stopped()) return;
      const start = await this.untilStop(this.start);
      if (start === STOP) return;
      let position = start.position;
      let tailing = start.tailOnly;
      /** The next catch-up chunk, requested before the current one is delivered (one chunk of read-ahead). */
      let readAhead: { reply: Promise<unknown>; count: number } | undefined;
      while (!this.stopped()) {
        let entries: RawEntry[];
        try {
          if (!tailing) {
            if (position.kind === 'after' && position.streamId === MAX_STREAM_ID) {
              tailing = true; // nothing can ever come after the largest id; XRANGE would refuse `(max`
              continue;
            }
            const request = readAhead ?? this.xrange(position);
            readAhead = undefined;
            const reply = await this.untilStop(request.reply);
            if (reply === STOP) return;
            entries = (reply as RawEntry[] | null) ?? [];
            this.fitChunkToBudget(entries);
            const lastId = entries[entries.length - 1]?.[0].toString('latin1');
            if (entries.length < request.count || lastId === MAX_STREAM_ID) tailing = true; // caught up: from now on XREAD BLOCK
            else readAhead = this.xrange({ kind: 'after', streamId: lastId! });
          } else {
            this.tail ??= this.ctx.openTailConnection();
            const after = position.kind === 'after' ? position.streamId : predecessorStreamId(position.streamId);
            const tail = this.tail;
            const reply = await this.untilStop(
              tail.track(() =>
                tail.connection.callBuffer(
                  'xread', // lower case: ioredis' reply transformer then gives the same shape under RESP2 and RESP3
                  'COUNT',
                  this.chunk,
                  'BLOCK',
                  this.ctx.tailBlockMs,
                  'STREAMS',
                  this.ctx.streamKey,
                  after,
                ) as Promise<unknown>,
              ),
            );
            if (reply === STOP) return;
            entries = entriesOfXread(reply);
            this.fitChunkToBudget(entries);
          }
        } catch (e) {
          // The connection dropped with the read in flight (Redis restarted): read again from the same
          // position once it is back (ioredis queues the command until then, or fails it for good).
          if (!this.stopped() && isConnectionLost(e)) continue;
          throw e;
        }
        for (const raw of entries) {
          const streamId = raw[0].toString('latin1');
          const entry = this.toEntry(streamId, raw[1]);
          position = { kind: 'after', streamId };
          yield entry;
          if (this.stopped()) return;
        }
      }
    } catch (e) {
      if (this.stopped()) return; // a disconnect caused by the stop itself
      throw isStreamingError(e) ? e : readFailed(this.ctx.pchannel, e);
    } finally {
      this.signal?.removeEventListener('abort', onAbort);
      unsubscribe();
      this.tail?.release();
      this.tail = undefined;
      this.onDone();
    }
  }

  private xrange(position: ReadPosition): { reply: Promise<unknown>; count: number } {
    const from = position.kind === 'from' ? position.streamId : `(${position.streamId}`;
    const count = this.chunk;
    const reply = this.ctx.track(() => this.ctx.client.callBuffer('xrange', this.ctx.streamKey, from, '+', 'COUNT', count) as Promise<unknown>);
    reply.catch(() => undefined); // a read-ahead the reader stops before using must not be an unhandled rejection
    return { reply, count };
  }

  /**
   * Entries asked for per read: FIRST_READ_COUNT at first, then as many as fit READ_BUDGET_BYTES at
   * the sizes seen in the last reply, at most `readChunk`; so that a reply (which Redis builds whole
   * in its memory, and this process receives whole, with one more in flight as read-ahead) stays
   * bounded: a thousand 4 MiB records would be 4 GiB.
   */
  private fitChunkToBudget(entries: readonly RawEntry[]): void {
    if (entries.length === 0) return;
    let bytes = 0;
    for (const e of entries) for (const f of e[1]) bytes += f.length;
    const perEntry = Math.max(1, bytes / entries.length);
    this.chunk = Math.max(1, Math.min(this.ctx.readChunk, Math.floor(READ_BUDGET_BYTES / perEntry)));
  }

  private stopped(): boolean {
    return this.interrupted || this.ctx.stopped() || this.signal?.aborted === true;
  }

  private untilStop<T>(p: Promise<T>): Promise<T | Stop> {
    if (this.stopped()) return Promise.resolve(STOP);
    return Promise.race([p, this.stopPromise]);
  }

  private toEntry(streamId: string, fields: Buffer[]): LogEntry {
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i]!;
      if (name.length === 1 && name[0] === RECORD_FIELD_BYTE) {
        const v = fields[i + 1]!;
        return { id: toMessageId(streamId), data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
      }
    }
    throw new StreamingError(ErrorCode.UNRECOVERABLE, `pchannel ${this.ctx.pchannel}: stream entry ${streamId} has no record field`, {
      details: { pchannel: this.ctx.pchannel, streamKey: this.ctx.streamKey, streamId },
    });
  }
}

/**
 * XREAD on one stream: null (timeout), [[key, entries]] (RESP2, or RESP3 with ioredis' default
 * `replyMapping: 'legacy'`), or an object / Map key → entries (RESP3 with `replyMapping: 'resp3'`).
 */
function entriesOfXread(reply: unknown): RawEntry[] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) return ((reply[0] as [Buffer, RawEntry[]] | undefined)?.[1] ?? []) as RawEntry[];
  if (reply instanceof Map) return ([...reply.values()][0] ?? []) as RawEntry[];
  if (typeof reply === 'object') return (Object.values(reply as Record<string, RawEntry[]>)[0] ?? []) as RawEntry[];
  return [];
}

function readFailed(pchannel: string, e: unknown): StreamingError {
  const message = e instanceof Error ? e.message : String(e);
  return new StreamingError(ErrorCode.INNER, `redis wal: reading pchannel ${pchannel} failed: ${message}`, { cause: e, details: { pchannel } });
}
