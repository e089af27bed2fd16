/**
 * The negative integers the Lua scripts return, and the one mapper that turns them into typed errors
 * (BullMQ's `ErrorCode` habit). 0 is never an error: it means "CAS lost / not held" and each caller
 * turns it into `undefined` or `false`. Positive numbers are results (versions, terms, epochs).
 */
import { ChannelFencedError, ErrorCode, StreamingError } from '../../../runtime/errors';
import { LeadershipLostError, LeaseLostError } from '../errors';

export const ScriptErrorCode = {
  /** owner-write: the writer's term is not the pchannel's current term. */
  STALE_TERM: -1,
  /** leader-write: the writer's epoch is not the live leadership. */
  NOT_LEADER: -2,
  /** put: the lease expired or was revoked. */
  LEASE_LOST: -3,
} as const;
export type ScriptErrorCode = (typeof ScriptErrorCode)[keyof typeof ScriptErrorCode];

/** What the caller knows about the refused operation, for the error's message and details. */
export interface ScriptErrorContext {
  readonly script: string;
  readonly pchannel?: string;
  readonly term?: number;
  /** The pchannel's term as read right after the refusal (for the message only). */
  readonly currentTerm?: number;
  readonly election?: string;
  readonly epoch?: number;
  readonly currentEpoch?: number;
  readonly leaseId?: string;
}

export function scriptError(code: number, ctx: ScriptErrorContext): StreamingError {
  switch (code) {
    case ScriptErrorCode.STALE_TERM:
      return new ChannelFencedError(ctx.pchannel ?? '?', ctx.term ?? 0, ctx.currentTerm);
    case ScriptErrorCode.NOT_LEADER:
      return new LeadershipLostError(ctx.election ?? '?', ctx.epoch ?? 0, ctx.currentEpoch);
    case ScriptErrorCode.LEASE_LOST:
      return new LeaseLostError(ctx.leaseId ?? '?');
    default:
      return new StreamingError(ErrorCode.UNKNOWN, `Lua script ${ctx.script} returned unknown code ${code}`, {
        details: { ...ctx, code },
        retriable: false,
      });
  }
}

/** A script's integer reply, or the mapped error for a negative one. */
export function expectResult(reply: unknown, ctx: ScriptErrorContext): number {
  const n = typeof reply === 'number' ? reply : Number(reply);
  if (!Number.isSafeInteger(n)) {
    throw new StreamingError(ErrorCode.UNKNOWN, `Lua script ${ctx.script} returned a non-integer reply`, {
      details: { ...ctx, reply: String(reply) },
      retriable: false,
    });
  }
  if (n < 0) throw scriptError(n, ctx);
  return n;
}
