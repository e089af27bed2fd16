/**
 * Typed errors of the object store. No new ErrorCode: a missing object is UNRECOVERABLE for the
 * request that needed it (retrying cannot make it appear), and a refused create-only put is
 * IGNORED_OPERATION (nothing was written; the object that is there stays). Callers test with
 * `isObjectNotFound(e)` / `isObjectAlreadyExists(e)`, which look at `details.reason`, so they also
 * work on errors that crossed a serialization boundary (toJSON keeps details).
 */
import { ErrorCode, StreamingError } from '../../runtime/errors';

export const ObjectErrorReason = {
  NOT_FOUND: 'not found',
  ALREADY_EXISTS: 'already exists',
} as const;
export type ObjectErrorReason = (typeof ObjectErrorReason)[keyof typeof ObjectErrorReason];

export class ObjectNotFoundError extends StreamingError {
  readonly key: string;
  constructor(key: string, cause?: unknown) {
    super(ErrorCode.UNRECOVERABLE, `object ${JSON.stringify(key)} not found`, {
      cause,
      retriable: false,
      details: { key, reason: ObjectErrorReason.NOT_FOUND },
    });
    this.name = 'ObjectNotFoundError';
    this.key = key;
  }
}

export class ObjectAlreadyExistsError extends StreamingError {
  readonly key: string;
  constructor(key: string, cause?: unknown) {
    super(ErrorCode.IGNORED_OPERATION, `object ${JSON.stringify(key)} already exists`, {
      cause,
      retriable: false,
      details: { key, reason: ObjectErrorReason.ALREADY_EXISTS },
    });
    this.name = 'ObjectAlreadyExistsError';
    this.key = key;
  }
}

function reasonOf(e: unknown): unknown {
  return e instanceof StreamingError ? e.details?.['reason'] : undefined;
}

export function isObjectNotFound(e: unknown): boolean {
  return reasonOf(e) === ObjectErrorReason.NOT_FOUND && (e as StreamingError).code === ErrorCode.UNRECOVERABLE;
}

export function isObjectAlreadyExists(e: unknown): boolean {
  return reasonOf(e) === ObjectErrorReason.ALREADY_EXISTS && (e as StreamingError).code === ErrorCode.IGNORED_OPERATION;
}

/** A call on a store that is closed (or closing). */
export function storeClosed(store: string): StreamingError {
  return new StreamingError(ErrorCode.ON_SHUTDOWN, `object store ${store} is closed`, { details: { store } });
}

/** A transient failure of the storage below (network, 5xx, EAGAIN …): retriable. */
export function transientStoreError(store: string, op: string, key: string, cause: unknown): StreamingError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new StreamingError(ErrorCode.INNER, `object store ${store}: ${op} ${JSON.stringify(key)} failed: ${reason}`, {
    cause,
    details: { store, op, key },
  });
}

/** Out of space, file descriptors or request budget: retriable later. */
export function exhaustedStoreError(store: string, op: string, key: string, cause: unknown): StreamingError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, `object store ${store}: ${op} ${JSON.stringify(key)} failed: ${reason}`, {
    cause,
    details: { store, op, key },
  });
}

/** A failure that retrying will not fix (access denied, no such bucket, read-only file system …). */
export function permanentStoreError(store: string, op: string, key: string, cause: unknown): StreamingError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new StreamingError(ErrorCode.UNRECOVERABLE, `object store ${store}: ${op} ${JSON.stringify(key)} failed: ${reason}`, {
    cause,
    retriable: false,
    details: { store, op, key },
  });
}
