/**
 * The caller's side of one transaction: body appends may run concurrently; commit or rollback
 * happens once, and only when no body append is still in flight (its outcome would be unknown).
 * Shared by the in-process WAL handle and the client's routed transaction.
 */
import { ErrorCode, StreamingError } from '../errors';

export class TxnGuard {
  private done = false;
  private inFlight = 0;

  constructor(readonly id: bigint) {}

  /** Runs a body append; INVALID_TRANSACTION_STATE once the transaction is finished. */
  async body<T>(append: () => Promise<T>): Promise<T> {
    if (this.done) throw new StreamingError(ErrorCode.INVALID_TRANSACTION_STATE, `transaction ${this.id} is already finished`);
    this.inFlight++;
    try {
      return await append();
    } finally {
      this.inFlight--;
    }
  }

  /** Runs the commit or rollback append, at most once and only with no body append in flight. */
  finish<T>(type: 'CommitTxn' | 'RollbackTxn', append: () => Promise<T>): Promise<T> {
    if (this.done) return Promise.reject(new StreamingError(ErrorCode.INVALID_TRANSACTION_STATE, `transaction ${this.id} is already finished`));
    if (this.inFlight > 0) {
      return Promise.reject(new StreamingError(ErrorCode.INVALID_TRANSACTION_STATE, `transaction ${this.id} has ${this.inFlight} appends in flight; wait for them before ${type}`));
    }
    this.done = true;
    return append();
  }
}
