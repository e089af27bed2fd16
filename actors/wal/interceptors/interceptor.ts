/**
 * The append path is a chain of interceptors: lock → timetick → shard → write pipe.
 * Each sees the message on the way in and the result on the way out. Rule: from the timetick
 * allocation to the write pipe nothing awaits, so write order equals timetick order.
 */
import type { MessageId } from '../../../runtime/message/message-id';
import type { Timetick } from '../../../runtime/message/timetick';
import type { Message, TxnContext } from '../../../runtime/message/types';

export interface AppendResult {
  id: MessageId;
  timetick: Timetick;
  lastConfirmedId: MessageId;
  /** Set for BeginTxn (the new transaction) and for messages of a transaction. */
  txn?: TxnContext;
  /** Type-specific results, e.g. the segments a ManualFlush sealed. */
  extra?: {
    /** The segments a ManualFlush sealed. */
    segmentIds?: number[];
    /** The primary keys generated for an insert into an autoId collection: first, first + 1, … (count). */
    autoIds?: { first: number; count: number };
  };
}

export type AppendNext = (msg: Message) => Promise<AppendResult>;

export interface Interceptor {
  readonly name: string;
  doAppend(msg: Message, next: AppendNext): Promise<AppendResult>;
}
