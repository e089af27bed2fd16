/**
 * Timetick interceptor: gives each message its timetick and last-confirmed id, stamps the term,
 * and keeps the transaction sessions. The last-confirmed id is the last persisted position, held
 * back to the begin of any open transaction, so that a reader resuming from it with a timetick
 * filter still sees whole transactions.
 */
import { ErrorCode, StreamingError } from '../../../runtime/errors';
import { minMessageId, type MessageId } from '../../../runtime/message/message-id';
import type { Timetick } from '../../../runtime/message/timetick';
import { TXN_BODY_TYPES, type Message } from '../../../runtime/message/types';
import type { TxnManager } from '../txn-manager';
import { appendAsync, failed, settle, type AppendDone, type AppendNext, type AppendResult, type Interceptor } from './interceptor';

export interface TimetickSource {
  tryAllocate(): Timetick | undefined;
  refill(): Promise<void>;
  /** Drops a local batch older than `maxAgeMs`, so timeticks stay close to the wall clock. */
  syncIfExpired(maxAgeMs: number): void;
}

/** A local timestamp batch older than this is dropped before allocating (as Milvus does). */
export const TSO_BATCH_MAX_AGE_MS = 50;

export interface TimetickContext {
  tso: TimetickSource;
  txns: TxnManager;
  term: number;
  /** Id of the last message known to be persisted. */
  lastPersistedId(): MessageId;
  defaultTxnKeepaliveMs: number;
}

export class TimetickInterceptor implements Interceptor {
  readonly name = 'timetick';
  constructor(private readonly ctx: TimetickContext) {}

  doAppend(msg: Message, next: AppendNext, done: AppendDone): void {
    const { tso } = this.ctx;
    let tt: Timetick | undefined;
    try {
      tso.syncIfExpired(TSO_BATCH_MAX_AGE_MS);
      tt = tso.tryAllocate();
    } catch (e) {
      done(failed(e));
      return;
    }
    if (tt === undefined) settle(this.refillThenStamp(msg, next), done);
    else this.stamped(msg, next, done, tt);
  }

  /** The local batch is empty: wait for a refill (before holding any timetick), then go on. */
  private async refillThenStamp(msg: Message, next: AppendNext): Promise<AppendResult> {
    const { tso } = this.ctx;
    let tt = tso.tryAllocate();
    while (tt === undefined) {
      await tso.refill();
      tt = tso.tryAllocate();
    }
    const stampedTt = tt;
    return appendAsync((m, done) => this.stamped(m, next, done, stampedTt), msg);
  }

  /** Stamps the allocated timetick and passes on in the same turn. */
  private stamped(msg: Message, next: AppendNext, done: AppendDone, tt: Timetick): void {
    // From here to the write pipe nothing awaits: write order = timetick order.
    try {
      msg.timetick = tt;
      msg.term = this.ctx.term;
      msg.lastConfirmedId = minMessageId(this.ctx.lastPersistedId(), this.ctx.txns.earliestOpenLastConfirmed());
    } catch (e) {
      done(failed(e));
      return;
    }
    if (msg.type !== 'TimeTick' && msg.type !== 'BeginTxn' && msg.type !== 'CommitTxn' && msg.type !== 'RollbackTxn' && !msg.txn) next(msg, done);
    else settle(this.withTxns(msg, (m) => appendAsync(next, m), tt), done);
  }

  /** TimeTicks and transaction messages (an async frame: the awaits below come after next was called). */
  private async withTxns(msg: Message, next: (msg: Message) => Promise<AppendResult>, tt: Timetick): Promise<AppendResult> {
    const { txns } = this.ctx;
    switch (msg.type) {
      case 'TimeTick':
        txns.cleanupUntil(tt);
        return next(msg);
      case 'BeginTxn': {
        const keepaliveMs = msg.header.keepaliveMs === 0 ? this.ctx.defaultTxnKeepaliveMs : msg.header.keepaliveMs;
        if (!Number.isFinite(keepaliveMs) || keepaliveMs < 1) {
          throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `transaction keepalive must be ≥ 1 ms (or 0 for the default), got ${msg.header.keepaliveMs}`, {
            details: { field: 'header.keepaliveMs' },
          });
        }
        msg.header.keepaliveMs = keepaliveMs;
        txns.begin(msg.vchannel, keepaliveMs, tt, msg.lastConfirmedId);
        msg.txn = { id: tt, keepaliveMs };
        try {
          return { ...(await next(msg)), txn: msg.txn };
        } catch (e) {
          txns.abortBegin(tt);
          throw e;
        }
      }
      case 'CommitTxn':
      case 'RollbackTxn': {
        const txn = requireTxn(msg);
        const s = msg.type === 'CommitTxn' ? txns.requestCommit(txn.id, msg.vchannel, tt) : txns.requestRollback(txn.id, msg.vchannel, tt);
        msg.txn = { id: s.id, keepaliveMs: s.keepaliveMs };
        try {
          const r = await next(msg);
          txns.finish(s, true);
          return { ...r, txn: msg.txn };
        } catch (e) {
          txns.finish(s, false);
          throw e;
        }
      }
      default: {
        if (!msg.txn) return next(msg);
        if (!TXN_BODY_TYPES.has(msg.type)) {
          throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `${msg.type} cannot be part of a transaction`, { details: { field: 'txn' } });
        }
        const s = txns.addBody(msg.txn.id, msg.vchannel, tt);
        msg.txn = { id: s.id, keepaliveMs: s.keepaliveMs };
        try {
          const r = await next(msg);
          txns.bodyDone(s, tt, true);
          return { ...r, txn: msg.txn };
        } catch (e) {
          txns.bodyDone(s, tt, false);
          throw e;
        }
      }
    }
  }
}

function requireTxn(msg: Message): NonNullable<Message['txn']> {
  if (!msg.txn) {
    throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `${msg.type} needs the transaction context (txn.id)`, { details: { field: 'txn' } });
  }
  return msg.txn;
}
