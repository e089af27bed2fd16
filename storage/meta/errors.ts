/**
 * Typed errors of the MetaStore beyond runtime/errors.ts. A stale pchannel term is the shared
 * ChannelFencedError (CHANNEL_FENCED); the rest are UNRECOVERABLE for the operation that got them:
 * retrying with the same lease / epoch / directory can never succeed.
 */
import { ErrorCode, StreamingError } from '../../runtime/errors';

/** A write referred to a lease that expired or was revoked. The holder must re-register with a new lease. */
export class LeaseLostError extends StreamingError {
  constructor(readonly leaseId: string) {
    super(ErrorCode.UNRECOVERABLE, `lease ${leaseId} expired or was revoked`, { details: { leaseId }, retriable: false });
    this.name = 'LeaseLostError';
  }
}

/** A leader write at an epoch that is no longer the live leadership. The writer must step down. */
export class LeadershipLostError extends StreamingError {
  constructor(readonly election: string, readonly epoch: number, readonly currentEpoch: number | undefined) {
    super(
      ErrorCode.UNRECOVERABLE,
      `not the leader of ${election}: writer epoch ${epoch}, live leader epoch ${currentEpoch ?? 'none'}`,
      { details: { election, epoch, currentEpoch }, retriable: false },
    );
    this.name = 'LeadershipLostError';
  }
}

/** Another live process holds the embedded store's data directory. */
export class DataDirLockedError extends StreamingError {
  constructor(readonly lockFile: string, readonly holderPid: number, reason: string) {
    super(
      ErrorCode.UNRECOVERABLE,
      `meta store directory is locked: ${lockFile} is held by ${reason} (pid ${holderPid}). ` +
        `Only one process may use a data directory; stop that process or use another directory ` +
        `(if no such process exists, delete the lock file).`,
      { details: { lockFile, holderPid }, retriable: false },
    );
    this.name = 'DataDirLockedError';
  }
}

export function isLeaseLost(e: unknown): e is LeaseLostError {
  return e instanceof LeaseLostError;
}

export function isLeadershipLost(e: unknown): e is LeadershipLostError {
  return e instanceof LeadershipLostError;
}

export function storeClosed(what: string): StreamingError {
  return new StreamingError(ErrorCode.ON_SHUTDOWN, `${what} is closed`);
}
