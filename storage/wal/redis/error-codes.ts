/**
 * The negative integers the WAL Lua scripts return, and the one mapper that turns them into typed
 * errors (BullMQ's `ErrorCode` habit; the same shape as storage/meta/redis/error-codes.ts, and
 * STALE_TERM has the same value there). Non-negative replies are results.
 */
import { ChannelFencedError, ErrorCode, StreamingError } from '../../../runtime/errors';

export const WalScriptErrorCode = {
  /** open: the requested term is below the current one. append/truncate: the current term is not the writer's. */
  STALE_TERM: -1,
  /** append/truncate: a newer rw open at the same term superseded this writer. */
  SUPERSEDED: -2,
} as const;
export type WalScriptErrorCode = (typeof WalScriptErrorCode)[keyof typeof WalScriptErrorCode];

/** What the caller knows about the refused operation, for the error's message and details. */
export interface WalScriptErrorContext {
  readonly script: string;
  readonly pchannel: string;
  readonly term: number;
  /** The pchannel's term as read right after the refusal (for the message only). */
  readonly currentTerm?: number;
}

export function walScriptError(code: number, ctx: WalScriptErrorContext): StreamingError {
  switch (code) {
    case WalScriptErrorCode.STALE_TERM:
    case WalScriptErrorCode.SUPERSEDED:
      return new ChannelFencedError(ctx.pchannel, ctx.term, ctx.currentTerm);
    default:
      return new StreamingError(ErrorCode.UNKNOWN, `Lua script ${ctx.script} returned unknown code ${code}`, {
        details: { ...ctx, code },
        retriable: false,
      });
  }
}

/** The negative code of a script reply, or undefined when the reply is a result. */
export function errorCodeOf(reply: unknown): number | undefined {
  if (typeof reply === 'number' && reply < 0) return reply;
  return undefined;
}

/** A script's integer reply, or the mapped error for a negative one. */
export function expectInteger(reply: unknown, ctx: WalScriptErrorContext): number {
  const n = typeof reply === 'number' ? reply : Number(reply);
  if (!Number.isSafeInteger(n)) {
    throw new StreamingError(ErrorCode.UNKNOWN, `Lua script ${ctx.script} returned a non-integer reply`, {
      details: { ...ctx, reply: String(reply) },
      retriable: false,
    });
  }
  if (n < 0) throw walScriptError(n, ctx);
  return n;
}

/**
 * A command was in flight when its connection to Redis dropped (see runtime/redis/connection-loss.ts):
 * retriable, and for a write the outcome is unknown — it may or may not have been applied.
 */
export function connectionLost(what: string): StreamingError {
  return new StreamingError(ErrorCode.INNER, `redis wal: the ${what} to Redis dropped with the command in flight (its outcome is unknown)`, {
    retriable: true,
    details: { connectionLost: true },
  });
}

export function isConnectionLost(e: unknown): boolean {
  return e instanceof StreamingError && e.details?.connectionLost === true;
}
