/**
 * Transaction sessions of one pchannel. A transaction lives on one vchannel: BeginTxn, then body
 * Inserts/Deletes, then CommitTxn or RollbackTxn. Expiry is measured in timetick time: a session
 * expires when a new timetick reaches its last timetick + keepalive. An exclusive message on the
 * vchannel fails every open transaction there. Pure state: the timetick interceptor drives it.
 */
import { ErrorCode, StreamingError } from '../../runtime/errors';
import { addPhysical, type Timetick } from '../../runtime/message/timetick';
import { minMessageId, type MessageId } from '../../runtime/message/message-id';

export type TxnState = 'inFlight' | 'onCommit' | 'committed' | 'onRollback' | 'rolledBack' | 'failed';

export interface TxnSession {
  readonly id: bigint;
  readonly vchannel: string;
  readonly keepaliveMs: number;
  /** Last-confirmed id of the BeginTxn: no reader resume point may pass it while the txn is open. */
  readonly beginLastConfirmedId: MessageId;
  state: TxnState;
  /** Timetick of the last accepted message of the txn; expiry counts from it. */
  lastTimetick: Timetick;
  /** Body messages allocated but not yet persisted (or failed). */
  inFlight: number;
  failReason?: string;
}

function expired(s: TxnSession, tt: Timetick): boolean {
  return tt >= addPhysical(s.lastTimetick, s.keepaliveMs);
}

export class TxnManager {
  private readonly sessions = new Map<bigint, TxnSession>();
  private closed = false;

  get openCount(): number {
    return this.sessions.size;
  }

  /** Registers a session for a BeginTxn allocated at `tt`. The txn id is that timetick. */
  begin(vchannel: string, keepaliveMs: number, tt: Timetick, lastConfirmedId: MessageId): TxnSession {
    if (this.closed) throw new StreamingError(ErrorCode.TRANSACTION_EXPIRED, 'transaction manager closed');
    const s: TxnSession = { id: tt, vchannel, keepaliveMs, beginLastConfirmedId: lastConfirmedId, state: 'inFlight', lastTimetick: tt, inFlight: 0 };
    this.sessions.set(tt, s);
    return s;
  }

  /** The BeginTxn was not written: forget the session. */
  abortBegin(id: bigint): void {
    this.sessions.delete(id);
  }

  private check(id: bigint, vchannel: string, tt: Timetick, what: string): TxnSession {
    const s = this.sessions.get(id);
    if (!s) {
      throw new StreamingError(ErrorCode.TRANSACTION_EXPIRED, `transaction ${id} is unknown or expired (${what})`, { details: { txnId: id.toString() } });
    }
    if (s.vchannel !== vchannel) {
      throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `transaction ${id} belongs to vchannel ${s.vchannel}, not ${vchannel}`, {
        details: { txnId: id.toString(), vchannel },
      });
    }
    if (s.state === 'failed') {
      throw new StreamingError(ErrorCode.TRANSACTION_EXPIRED, `transaction ${id} was failed: ${s.failReason ?? 'unknown'}`, { details: { txnId: id.toString() } });
    }
    if (s.state !== 'inFlight') {
      throw new StreamingError(ErrorCode.INVALID_TRANSACTION_STATE, `transaction ${id} is ${s.state}; ${what} needs inFlight`, {
        details: { txnId: id.toString(), state: s.state },
      });
    }
    if (expired(s, tt)) {
      s.state = 'failed';
      s.failReason = 'keepalive expired';
      throw new StreamingError(ErrorCode.TRANSACTION_EXPIRED, `transaction ${id} expired (keepalive ${s.keepaliveMs} ms)`, { details: { txnId: id.toString() } });
    }
    return s;
  }

  /** A body message got timetick `tt`. */
  addBody(id: bigint, vchannel: string, tt: Timetick): TxnSession {
    const s = this.check(id, vchannel, tt, 'body message');
    s.inFlight++;
    return s;
  }

  bodyDone(s: TxnSession, tt: Timetick, ok: boolean): void {
    s.inFlight--;
    if (ok && tt > s.lastTimetick) s.lastTimetick = tt;
  }

  /** CommitTxn got timetick `tt`. Bodies allocated before it are ahead of it in the ordered write pipe. */
  requestCommit(id: bigint, vchannel: string, tt: Timetick): TxnSession {
    const s = this.check(id, vchannel, tt, 'commit');
    s.state = 'onCommit';
    return s;
  }

  requestRollback(id: bigint, vchannel: string, tt: Timetick): TxnSession {
    const s = this.check(id, vchannel, tt, 'rollback');
    s.state = 'onRollback';
    return s;
  }

  /** The commit or rollback was written (ok) or not. */
  finish(s: TxnSession, ok: boolean): void {
    if (!ok) {
      s.failReason = `${s.state === 'onCommit' ? 'commit' : 'rollback'} could not be written`;
      s.state = 'failed';
      return;
    }
    s.state = s.state === 'onCommit' ? 'committed' : 'rolledBack';
    this.sessions.delete(s.id);
  }

  /** Fails every in-flight transaction on `vchannel` ("" = all): an exclusive message was written there. */
  failAt(vchannel: string, reason: string): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if ((vchannel === '' || s.vchannel === vchannel) && s.state === 'inFlight') {
        s.state = 'failed';
        s.failReason = reason;
        n++;
      }
    }
    return n;
  }

  /** Drops sessions that are done or expired as of `tt`. */
  cleanupUntil(tt: Timetick): void {
    for (const [id, s] of this.sessions) {
      if (s.inFlight > 0 || s.state === 'onCommit' || s.state === 'onRollback') continue;
      if (s.state !== 'inFlight' || expired(s, tt)) this.sessions.delete(id);
    }
  }

  /** Earliest begin position of an open transaction, merged into every new last-confirmed id. */
  earliestOpenLastConfirmed(): MessageId {
    let min = '';
    for (const s of this.sessions.values()) min = minMessageId(min, s.beginLastConfirmedId);
    return min;
  }

  close(): void {
    this.closed = true;
  }
}
