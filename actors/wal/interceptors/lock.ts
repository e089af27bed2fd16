/**
 * Lock interceptor: exclusive messages (DDL, ManualFlush) hold their vchannel's write lock from
 * before their timetick is allocated until they are written, then fail the open transactions of
 * that vchannel; everything else holds read locks. So no append on a vchannel overlaps its DDL,
 * and no transaction straddles it.
 */
import { isExclusiveType, type Message } from '../../../runtime/message/types';
import type { VChannelLocks } from '../locks';
import type { TxnManager } from '../txn-manager';
import { failed, type AppendDone, type AppendNext, type Interceptor } from './interceptor';

export interface LockContext {
  locks: VChannelLocks;
  txns: Pick<TxnManager, 'failAt'>;
}

export class LockInterceptor implements Interceptor {
  readonly name = 'lock';
  constructor(private readonly ctx: LockContext) {}

  doAppend(msg: Message, next: AppendNext, done: AppendDone): void {
    const exclusive = isExclusiveType(msg.type);
    let waiting: Promise<void> | undefined;
    try {
      waiting = this.ctx.locks.acquire(msg.vchannel, exclusive);
    } catch (e) {
      done(failed(e));
      return;
    }
    // Taken at once (the usual case): go on in this same turn.
    if (waiting) {
      waiting.then(
        () => this.holding(msg, next, done, exclusive),
        (e: unknown) => done(failed(e)),
      );
    } else {
      this.holding(msg, next, done, exclusive);
    }
  }

  /** Runs next with the lock held and releases it once next is answered. */
  private holding(msg: Message, next: AppendNext, done: AppendDone, exclusive: boolean): void {
    next(msg, (o) => {
      this.unlock(msg, exclusive);
      done(o);
    });
  }

  private unlock(msg: Message, exclusive: boolean): void {
    if (exclusive) this.ctx.txns.failAt(msg.vchannel, `${msg.type} on vchannel ${msg.vchannel || '(all)'}`);
    this.ctx.locks.release(msg.vchannel, exclusive);
  }
}
