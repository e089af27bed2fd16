/**
 * A typed, promise-based face of one WAL actor for callers in the same process: append, the
 * transaction API, subscribe, status, close. Every call is a nact query with a deadline.
 */
import { query, type Ref } from 'nact';
import { ask } from '../../runtime/ask';
import { ErrorCode, StreamingError } from '../../runtime/errors';
import type { Message, NewMessage, TxnBodyMessage } from '../../runtime/message/types';
import { TxnGuard } from '../../runtime/message/txn-guard';
import type { AppendResult } from './interceptors/interceptor';
import type { AppendEntry, Reply, WalMsg, WalStatus } from './messages';
import type { Scanner, SubscribeOptions } from './scanner/scanner';

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export interface CallOptions {
  timeoutMs?: number;
}

export class WalHandle {
  constructor(
    readonly ref: Ref<WalMsg>,
    readonly pchannel: string,
    private readonly defaultTimeoutMs = DEFAULT_CALL_TIMEOUT_MS,
  ) {}

  private t(o?: CallOptions): number {
    return o?.timeoutMs ?? this.defaultTimeoutMs;
  }

  /** Resolves once the WAL is open (first TimeTick written), or rejects with why it is not. */
  ready(o?: CallOptions): Promise<WalStatus> {
    return ask<WalMsg, WalStatus>(this.ref, (replyTo) => ({ type: 'awaitOpen', replyTo }), this.t(o), `open ${this.pchannel}`);
  }

  /**
   * Appends that arrive while the previous ones still wait in the WAL's mailbox join them in one
   * `appendBatch` message (one mailbox turn, one query and one deadline timer for all of them);
   * each append is still answered on its own, in call order of arrival at the WAL.
   */
  append(message: NewMessage | Message, o?: CallOptions): Promise<AppendResult> {
    const timeoutMs = this.t(o);
    return new Promise<AppendResult>((resolve, reject) => {
      let b = this.batch;
      if (b === undefined || b.msg.taken || b.closed || b.timeoutMs !== timeoutMs) {
        b = new AppendBatch(this.ref, `append to ${this.pchannel}`, timeoutMs);
        this.batch = b;
        b.add(message, resolve, reject);
        b.send();
      } else {
        b.add(message, resolve, reject);
      }
    });
  }

  private batch: AppendBatch | undefined;

  /** Starts a transaction on `vchannel`. keepaliveMs 0 = the WAL's default. */
  async beginTxn(vchannel: string, keepaliveMs = 0, o?: CallOptions): Promise<Txn> {
    const r = await this.append({ type: 'BeginTxn', vchannel, header: { keepaliveMs }, body: {} }, o);
    if (!r.txn) throw new StreamingError(ErrorCode.INNER, 'BeginTxn returned no transaction');
    return new Txn(this, vchannel, r.txn.id, r.txn.keepaliveMs, r);
  }

  subscribe(options: SubscribeOptions, o?: CallOptions): Promise<Scanner> {
    return ask<WalMsg, Scanner>(this.ref, (replyTo) => ({ type: 'subscribe', options, replyTo }), this.t(o), `subscribe to ${this.pchannel}`);
  }

  async status(o?: CallOptions): Promise<WalStatus> {
    try {
      return await query(this.ref, (replyTo: Ref<WalStatus>): WalMsg => ({ type: 'status', replyTo }), this.t(o));
    } catch (e) {
      throw new StreamingError(ErrorCode.UNKNOWN, `status of ${this.pchannel}: no answer`, { cause: e });
    }
  }

  /** Stops intake, drains in-flight writes (bounded by the WAL's close timeout), ends subscribers, closes the log. */
  close(o?: CallOptions): Promise<void> {
    return ask<WalMsg, void>(this.ref, (replyTo) => ({ type: 'close', replyTo }), this.t(o), `close ${this.pchannel}`);
  }
}

/** The appends of one `appendBatch` message and their shared deadline. */
class AppendBatch {
  readonly msg: Extract<WalMsg, { type: 'appendBatch' }>;
  /** No more appends join (the deadline passed or the query failed). */
  closed = false;
  private unsettled = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ref: Ref<WalMsg>,
    private readonly what: string,
    readonly timeoutMs: number,
  ) {
    this.msg = { type: 'appendBatch', entries: [], taken: false, replyTo: undefined as unknown as Ref<Reply<void>> };
  }

  add(message: NewMessage | Message, resolve: (r: AppendResult) => void, reject: (e: unknown) => void): void {
    this.unsettled++;
    this.msg.entries.push(new BatchedAppend(message, this, resolve, reject));
  }

  /** One of the appends was answered. */
  settledOne(): void {
    if (--this.unsettled === 0 && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  send(): void {
    const t0 = performance.now();
    const msg = this.msg;
    let accepted: Promise<unknown>;
    try {
      accepted = query(
        this.ref,
        (replyTo: Ref<Reply<void>>): WalMsg => {
          msg.replyTo = replyTo;
          return msg;
        },
        Math.max(1, this.timeoutMs),
      );
    } catch (e) {
      // A stopped actor can make query throw at once: the appends get UNKNOWN, like from ask().
      accepted = Promise.reject(e);
    }
    accepted.then(
      () => {
        // Taken by the WAL: the rest of the deadline runs here, for the appends not yet answered.
        if (this.unsettled === 0) return;
        const left = Math.max(1, this.timeoutMs - (performance.now() - t0));
        this.timer = setTimeout(() => this.expire(undefined), left);
      },
      (e: unknown) => this.expire(e),
    );
  }

  private expire(cause: unknown): void {
    this.closed = true;
    this.timer = undefined;
    const error = new StreamingError(ErrorCode.UNKNOWN, `${this.what}: no answer within ${this.timeoutMs} ms (the outcome is unknown)`, {
      ...(cause !== undefined ? { cause } : {}),
      details: { timeoutMs: this.timeoutMs, deadlineExceeded: true },
      retriable: true,
    });
    for (const e of this.msg.entries) e.reply({ ok: false, error });
  }
}

/** One append of a batch: answers its caller's promise once (the WAL's answer or the batch's deadline, whichever comes first). */
class BatchedAppend implements AppendEntry {
  private settled = false;

  constructor(
    readonly message: NewMessage | Message,
    private readonly batch: AppendBatch,
    private readonly resolve: (r: AppendResult) => void,
    private readonly reject: (e: unknown) => void,
  ) {}

  reply(r: Reply<AppendResult>): void {
    if (this.settled) return;
    this.settled = true;
    this.batch.settledOne();
    if (r.ok) this.resolve(r.value);
    else this.reject(r.error);
  }
}

type BodyInput = NewMessage<TxnBodyMessage>;

/** A transaction on one vchannel: append bodies (Insert/Delete), then commit or roll back once. */
export class Txn {
  private readonly guard: TxnGuard;

  constructor(
    private readonly wal: WalHandle,
    readonly vchannel: string,
    readonly id: bigint,
    readonly keepaliveMs: number,
    readonly begin: AppendResult,
  ) {
    this.guard = new TxnGuard(id);
  }

  append(message: BodyInput, o?: CallOptions): Promise<AppendResult> {
    if (message.vchannel !== this.vchannel) {
      return Promise.reject(new StreamingError(ErrorCode.INVALID_ARGUMENT, `transaction ${this.id} is on ${this.vchannel}; message is for ${message.vchannel}`, { details: { field: 'vchannel' } }));
    }
    return this.guard.body(() => this.wal.append({ ...message, txn: { id: this.id, keepaliveMs: this.keepaliveMs } } as NewMessage, o));
  }

  commit(o?: CallOptions): Promise<AppendResult> {
    return this.finish('CommitTxn', o);
  }

  rollback(o?: CallOptions): Promise<AppendResult> {
    return this.finish('RollbackTxn', o);
  }

  private finish(type: 'CommitTxn' | 'RollbackTxn', o?: CallOptions): Promise<AppendResult> {
    return this.guard.finish(type, () => this.wal.append({ type, vchannel: this.vchannel, header: {}, body: {}, txn: { id: this.id, keepaliveMs: this.keepaliveMs } }, o));
  }
}
