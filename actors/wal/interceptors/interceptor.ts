/**
 * The append path is a chain of interceptors: lock → timetick → shard → write pipe.
 * Each sees the message on the way in and its outcome on the way out. Rule: from the timetick
 * allocation to the write pipe nothing awaits, so write order equals timetick order.
 *
 * The chain passes callbacks, not promises: an append is answered through its `done`, called
 * exactly once (possibly in the same turn, e.g. for an error found on the way in). An interceptor
 * that must act after the write wraps `done`; one that passes the message on hands `done` down
 * unchanged, so a plain insert allocates no promise between the caller and the write pipe.
 * `doAppend` and `next` never throw: an error becomes `done({ ok: false, error })`.
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

export type AppendOutcome = { ok: true; value: AppendResult } | { ok: false; error: unknown };
export type AppendDone = (outcome: AppendOutcome) => void;
export type AppendNext = (msg: Message, done: AppendDone) => void;

export interface Interceptor {
  readonly name: string;
  doAppend(msg: Message, next: AppendNext, done: AppendDone): void;
}

export function failed(error: unknown): AppendOutcome {
  return { ok: false, error };
}

/** `next` as a promise, for the interceptors' async paths (DDL, transactions, segments). */
export function appendAsync(next: AppendNext, msg: Message): Promise<AppendResult> {
  return new Promise<AppendResult>((resolve, reject) => next(msg, (o) => (o.ok ? resolve(o.value) : reject(o.error))));
}

/** Answers `done` with the outcome of `p`. */
export function settle(p: Promise<AppendResult>, done: AppendDone): void {
  p.then(
    (value) => done({ ok: true, value }),
    (error: unknown) => done({ ok: false, error }),
  );
}
