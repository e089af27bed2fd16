/**
 * A WalLog over one pchannel's stream. rw logs carry the (term, epoch) their open got from
 * open-1.lua; every append is ONE append-2.lua call for the whole batch (one round trip, one group
 * commit) and every truncate one truncate-2.lua call, both fenced on (term, epoch) inside Redis.
 * Each read() is a RedisReader. Lives from open() to close().
 */
import type { Redis } from 'ioredis';
import type { DeliverPolicy, LogEntry, PChannelInfo, ReadOptions, WalLog } from '../backend';
import type { MessageId } from '../../../runtime/message/message-id';
import { ErrorCode, StreamingError, assertNever, invalidArgument, isStreamingError } from '../../../runtime/errors';
import { errorCodeOf, expectInteger, isConnectionLost, walScriptError } from './error-codes';
import type { ResolvedRedisWalOptions } from './options';
import { type ReadStart, RedisReader, type ReaderContext, type TailConnection } from './redis-reader';
import type { ScriptRunner, WalScriptName } from './scripts/loader';
import { MIN_STREAM_ID, toMessageId, toStreamId } from './stream-id';

/** What a log needs from its backend. */
export interface LogOwner {
  readonly client: Redis;
  readonly scripts: ScriptRunner<WalScriptName>;
  readonly opts: ResolvedRedisWalOptions;
  readonly closed: boolean;
  /** Sends a command on `client`; rejected (retriable, outcome unknown) if the connection drops before its reply. */
  track<T>(send: () => Promise<T>): Promise<T>;
  openTailConnection(): TailConnection;
  forget(log: RedisWalLog): void;
}

export class RedisWalLog implements WalLog {
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly readers = new Set<RedisReader>();
  private readonly stopListeners = new Set<() => void>();
  private readonly readerCtx: ReaderContext;
  private readonly streamKey: string;
  private readonly termKey: string;

  constructor(
    readonly channel: PChannelInfo,
    private readonly owner: LogOwner,
    /** This rw open's epoch (open-1.lua); undefined in ro mode. */
    private readonly epoch: number | undefined,
  ) {
    this.streamKey = owner.opts.keys.stream(channel.name);
    this.termKey = owner.opts.keys.term(channel.name);
    this.readerCtx = {
      pchannel: channel.name,
      streamKey: this.streamKey,
      client: owner.client,
      track: (send) => owner.track(send),
      readChunk: owner.opts.readChunk,
      tailBlockMs: owner.opts.tailBlockMs,
      openTailConnection: () => owner.openTailConnection(),
      stopped: () => this.closed || this.owner.closed,
      onStop: (fn) => {
        this.stopListeners.add(fn);
        return () => this.stopListeners.delete(fn);
      },
    };
  }

  append(records: readonly Uint8Array[]): Promise<MessageId[]> {
    try {
      this.checkWritable('append');
      if (!Array.isArray(records) || !records.every((r) => r instanceof Uint8Array)) {
        throw invalidArgument(`append to pchannel ${this.channel.name}: records must be an array of Uint8Array`, { pchannel: this.channel.name });
      }
    } catch (e) {
      return Promise.reject(e);
    }
    // Copied: the caller may reuse its buffers as soon as append() returns.
    const args = records.map((r) => Buffer.from(r));
    const reply = this.owner.track(() => this.owner.scripts.run('append', [this.termKey, this.streamKey], [this.channel.term, this.epoch!, ...args]));
    // Sent in the same tick, so it is pipelined right behind the script on the same connection.
    const wait = this.owner.opts.waitForReplicas;
    const acked = wait ? this.owner.track(() => this.owner.client.wait(wait.replicas, wait.timeoutMs) as Promise<number>) : undefined;
    acked?.catch(() => undefined);
    const done = this.finishAppend(reply, acked, records.length);
    this.inFlight.add(done);
    const forget = (): void => void this.inFlight.delete(done);
    done.then(forget, forget);
    return done;
  }

  read(opts: ReadOptions): AsyncIterable<LogEntry> {
    // The start is fixed now: for Latest, the XREVRANGE is sent before any append issued after this
    // call on the same connection, so "latest" means "after what was appended before read()".
    const start = this.startOf(opts.policy);
    const reader: RedisReader = new RedisReader(this.readerCtx, start, opts.signal, () => this.readers.delete(reader));
    this.readers.add(reader);
    return reader.run();
  }

  async truncate(upTo: MessageId): Promise<void> {
    this.checkWritable('truncate');
    const minId = toStreamId(upTo);
    const reply = await this.redis('truncate', () =>
      this.owner.track(() => this.owner.scripts.run('truncate', [this.termKey, this.streamKey], [this.channel.term, this.epoch!, minId])),
    );
    const code = errorCodeOf(reply);
    if (code !== undefined) throw await this.fenced('truncate', code);
    expectInteger(reply, { script: 'truncate', pchannel: this.channel.name, term: this.channel.term });
  }

  async oldestId(): Promise<MessageId | undefined> {
    if (this.owner.closed) throw onShutdown(this.channel.name);
    const reply = await this.redis('oldestId', () => this.owner.track(() => this.owner.client.xrange(this.streamKey, '-', '+', 'COUNT', 1)));
    const first = reply[0];
    return first ? toMessageId(first[0]) : undefined;
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      // Let appends already sent finish (their outcome goes to their callers), then end the readers.
      await Promise.allSettled([...this.inFlight]);
      const listeners = [...this.stopListeners];
      this.stopListeners.clear();
      for (const fn of listeners) fn();
      for (const r of this.readers) r.interrupt();
      this.owner.forget(this);
    })();
    return this.closing;
  }

  /** Ends this log's readers without waiting (backend close). */
  interruptReaders(): void {
    for (const r of this.readers) r.interrupt();
  }

  private async finishAppend(reply: Promise<unknown>, acked: Promise<number> | undefined, count: number): Promise<MessageId[]> {
    const result = await this.redis('append', () => reply);
    const code = errorCodeOf(result);
    if (code !== undefined) throw await this.fenced('append', code);
    if (!Array.isArray(result) || result.length !== count) {
      throw new StreamingError(ErrorCode.UNKNOWN, `redis wal: append script returned ${describe(result)} for ${count} records`, {
        details: { pchannel: this.channel.name },
        retriable: false,
      });
    }
    const ids = result.map((r) => toMessageId(String(r)));
    if (acked) {
      const wait = this.owner.opts.waitForReplicas!;
      const n = await this.redis('append (WAIT)', () => acked);
      if (n < wait.replicas) {
        throw new StreamingError(
          ErrorCode.INNER,
          `redis wal: append to pchannel ${this.channel.name} reached ${n} of ${wait.replicas} replicas within ${wait.timeoutMs} ms ` +
            `(the records are on the primary and may or may not survive a failover)`,
          { details: { pchannel: this.channel.name, ids, replicas: n, wanted: wait.replicas } },
        );
      }
    }
    return ids;
  }

  private startOf(policy: DeliverPolicy): Promise<ReadStart> {
    try {
      switch (policy.type) {
        case 'all':
          return Promise.resolve({ position: { kind: 'after', streamId: MIN_STREAM_ID }, tailOnly: false });
        case 'startFrom':
          return Promise.resolve({ position: { kind: 'from', streamId: toStreamId(policy.id) }, tailOnly: false });
        case 'startAfter':
          return Promise.resolve({ position: { kind: 'after', streamId: toStreamId(policy.id) }, tailOnly: false });
        case 'latest': {
          if (this.closed || this.owner.closed) return Promise.resolve({ position: { kind: 'after', streamId: MIN_STREAM_ID }, tailOnly: true });
          const last = this.owner.track(() => this.owner.client.xrevrange(this.streamKey, '+', '-', 'COUNT', 1));
          return this.redis('read (latest)', () => last).then((r) => ({
            position: { kind: 'after', streamId: r[0]?.[0] ?? MIN_STREAM_ID },
            tailOnly: true,
          }));
        }
        default:
          return assertNever(policy, 'deliver policy');
      }
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private checkWritable(op: 'append' | 'truncate'): void {
    if (this.channel.accessMode !== 'rw' || this.epoch === undefined) {
      throw invalidArgument(`cannot ${op} pchannel ${this.channel.name}: opened read-only`, { pchannel: this.channel.name, op });
    }
    if (this.closed || this.owner.closed) throw onShutdown(this.channel.name);
  }

  /** The fencing error of a refused script, with the current term read right after the refusal. */
  private async fenced(script: string, code: number): Promise<StreamingError> {
    const current = await this.owner.track(() => this.owner.client.hget(this.termKey, 'term')).catch(() => null);
    return walScriptError(code, {
      script,
      pchannel: this.channel.name,
      term: this.channel.term,
      ...(current !== null && current !== undefined ? { currentTerm: Number(current) } : {}),
    });
  }

  /** Runs a Redis call; transport and server failures become retriable INNER errors. */
  private async redis<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (isConnectionLost(e)) {
        throw new StreamingError(ErrorCode.INNER, `redis wal: ${op} on pchannel ${this.channel.name}: ${(e as Error).message}`, {
          cause: e,
          retriable: true,
          details: { pchannel: this.channel.name, op, connectionLost: true },
        });
      }
      if (isStreamingError(e)) throw e;
      const message = e instanceof Error ? e.message : String(e);
      throw new StreamingError(ErrorCode.INNER, `redis wal: ${op} on pchannel ${this.channel.name} failed: ${message}`, {
        cause: e,
        details: { pchannel: this.channel.name, op },
      });
    }
  }
}

export function onShutdown(pchannel: string): StreamingError {
  return new StreamingError(ErrorCode.ON_SHUTDOWN, `wal log of pchannel ${pchannel} is closed`, { details: { pchannel } });
}

function describe(x: unknown): string {
  return Array.isArray(x) ? `${x.length} ids` : JSON.stringify(x);
}
