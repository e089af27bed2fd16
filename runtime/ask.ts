/**
 * Request/reply with an actor: a nact query with a deadline whose answer is a `Reply<T>`.
 * No answer in time is UNKNOWN (retriable: the outcome is not known), an error reply is thrown.
 */
import { query, type Ref } from 'nact';
import { ErrorCode, StreamingError } from './errors';

export type Reply<T> = { ok: true; value: T } | { ok: false; error: StreamingError };

export async function ask<Msg, T>(ref: Ref<Msg>, make: (replyTo: Ref<Reply<T>>) => Msg, timeoutMs: number, what: string): Promise<T> {
  let reply: Reply<T>;
  try {
    reply = (await query(ref, make as (r: Ref<unknown>) => Msg, Math.max(1, timeoutMs))) as Reply<T>;
  } catch (e) {
    throw new StreamingError(ErrorCode.UNKNOWN, `${what}: no answer within ${timeoutMs} ms (the outcome is unknown)`, {
      cause: e,
      details: { timeoutMs, deadlineExceeded: true },
      retriable: true,
    });
  }
  if (!reply.ok) throw reply.error;
  return reply.value;
}
