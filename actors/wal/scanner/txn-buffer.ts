/**
 * Assembles transactions on the read side: BeginTxn + bodies + CommitTxn become one Txn message at
 * the commit timetick (bodies rewritten to the commit's timetick and last-confirmed id); rolled-back
 * and expired transactions are dropped; a transaction whose BeginTxn this reader never saw is dropped.
 */
import { addPhysical, type Timetick } from '../../../runtime/message/timetick';
import type { LogMessage, TxnBodyMessage, TxnMessage } from '../../../runtime/message/types';

interface OpenTxn {
  vchannel: string;
  keepaliveMs: number;
  lastTimetick: Timetick;
  bodies: LogMessage<TxnBodyMessage>[];
  size: number;
}

export class TxnBuffer {
  private readonly open = new Map<bigint, OpenTxn>();
  private bytes = 0;

  /** Encoded bytes of the messages of the open transactions (what this buffer holds). */
  get openBytes(): number {
    return this.bytes;
  }

  get openCount(): number {
    return this.open.size;
  }

  isOpen(txnId: bigint): boolean {
    return this.open.has(txnId);
  }

  /** Returns what to deliver for `msg`: itself, an assembled Txn, or nothing. */
  handle(msg: LogMessage): LogMessage | undefined {
    switch (msg.type) {
      case 'BeginTxn':
        if (msg.txn) {
          this.end(msg.txn.id); // a BeginTxn met twice starts over
          this.open.set(msg.txn.id, { vchannel: msg.vchannel, keepaliveMs: msg.txn.keepaliveMs, lastTimetick: msg.timetick, bodies: [], size: msg.size });
          this.bytes += msg.size;
        }
        return undefined;
      case 'CommitTxn': {
        const id = msg.txn?.id;
        const t = id === undefined ? undefined : this.open.get(id);
        if (id === undefined || !t) return undefined;
        this.end(id);
        const bodies = t.bodies.map((b) => ({ ...b, timetick: msg.timetick, lastConfirmedId: msg.lastConfirmedId }));
        const txn: LogMessage<TxnMessage> = {
          type: 'Txn',
          vchannel: msg.vchannel,
          timetick: msg.timetick,
          lastConfirmedId: msg.lastConfirmedId,
          term: msg.term,
          txn: { id, keepaliveMs: t.keepaliveMs },
          header: { txnId: id, count: bodies.length },
          body: { messages: bodies },
          id: msg.id,
          size: t.size + msg.size,
        };
        return txn;
      }
      case 'RollbackTxn':
        if (msg.txn) this.end(msg.txn.id);
        return undefined;
      case 'TimeTick':
        this.expire(msg.timetick);
        return msg;
      case 'Insert':
      case 'Delete': {
        if (!msg.txn) return msg;
        const t = this.open.get(msg.txn.id);
        if (t) {
          t.bodies.push(msg);
          t.size += msg.size;
          this.bytes += msg.size;
          if (msg.timetick > t.lastTimetick) t.lastTimetick = msg.timetick;
        }
        return undefined;
      }
      default:
        return msg;
    }
  }

  private expire(tt: Timetick): void {
    for (const [id, t] of this.open) {
      if (tt >= addPhysical(t.lastTimetick, t.keepaliveMs)) this.end(id);
    }
  }

  private end(id: bigint): void {
    const t = this.open.get(id);
    if (t === undefined) return;
    this.open.delete(id);
    this.bytes -= t.size;
  }
}
