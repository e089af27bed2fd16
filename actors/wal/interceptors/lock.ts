/**
 * Lock interceptor: exclusive messages (DDL, ManualFlush) hold their vchannel's write lock from
 * before their timetick is allocated until they are written, then fail the open transactions of
 * that vchannel; everything else holds read locks. So no append on a vchannel overlaps its DDL,
 * and no transaction straddles it.
 */
import { isExclusiveType, type Message } from '../../../runtime/message/types';
import type { VChannelLocks } from '../locks';
import type { TxnManager } from '../txn-manager';
import type { AppendNext, AppendResult, Interceptor } from './interceptor';

export interface LockContext {
  locks: VChannelLocks;
  txns: Pick<TxnManager, 'failAt'>;
}

export class LockInterceptor implements Interceptor {
  readonly name = 'lock';
  constructor(private readonly ctx: LockContext) {}

  async doAppend(msg: Message, next: AppendNext): Promise<AppendResult> {
    const exclusive = isExclusiveType(msg.type);
    const waiting = this.ctx.locks.acquire(msg.vchannel, exclusive);
    if (waiting) await waiting;
    try {
      return await next(msg);
    } finally {
      if (exclusive) this.ctx.txns.failAt(msg.vchannel, `${msg.type} on vchannel ${msg.vchannel || '(all)'}`);
      this.ctx.locks.release(msg.vchannel, exclusive);
    }
  }
}
