/**
 * Typed errors of walstream. Every failure that crosses a component boundary is a
 * StreamingError with a code from ErrorCode, a `retriable` flag and an optional `cause`.
 * Callers decide with the helpers below, never by matching message strings.
 */
export const ErrorCode = {
  OK: 'OK',
  CHANNEL_NOT_EXIST: 'CHANNEL_NOT_EXIST',
  CHANNEL_FENCED: 'CHANNEL_FENCED',
  ON_SHUTDOWN: 'ON_SHUTDOWN',
  UNMATCHED_CHANNEL_TERM: 'UNMATCHED_CHANNEL_TERM',
  IGNORED_OPERATION: 'IGNORED_OPERATION',
  INNER: 'INNER',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  TRANSACTION_EXPIRED: 'TRANSACTION_EXPIRED',
  INVALID_TRANSACTION_STATE: 'INVALID_TRANSACTION_STATE',
  UNRECOVERABLE: 'UNRECOVERABLE',
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  UNKNOWN: 'UNKNOWN',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Codes after which the same request may succeed if simply sent again later. */
const RETRIABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.ON_SHUTDOWN,
  ErrorCode.INNER,
  ErrorCode.RESOURCE_EXHAUSTED,
  ErrorCode.CHANNEL_NOT_EXIST,
  ErrorCode.UNMATCHED_CHANNEL_TERM,
]);

/** Codes after which a client must wait until the pchannel has a new owner, then retry. */
const NEEDS_NEW_ASSIGNMENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.CHANNEL_NOT_EXIST,
  ErrorCode.UNMATCHED_CHANNEL_TERM,
  ErrorCode.CHANNEL_FENCED,
]);

export class StreamingError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  /** Structured facts for the caller (field path, limit, actual value …). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown>; retriable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'StreamingError';
    this.code = code;
    this.retriable = opts.retriable ?? RETRIABLE.has(code);
    this.details = opts.details;
  }

  toJSON(): { code: ErrorCode; message: string; retriable: boolean; details?: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, retriable: this.retriable, ...(this.details ? { details: this.details } : {}) };
  }
}

/** Raised by storage when a writer with a newer term owns the pchannel. Never retried by the writer. */
export class ChannelFencedError extends StreamingError {
  constructor(pchannel: string, term: number, currentTerm: number | undefined, cause?: unknown) {
    super(
      ErrorCode.CHANNEL_FENCED,
      `pchannel ${pchannel} is fenced: writer term ${term}, current term ${currentTerm ?? 'unknown'}`,
      { cause, details: { pchannel, term, currentTerm } },
    );
    this.name = 'ChannelFencedError';
  }
}

/** Bytes that do not decode into a message: truncated, wrong version, corrupt. */
export class MessageDecodeError extends StreamingError {
  constructor(reason: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.INVALID_ARGUMENT, `cannot decode message: ${reason}`, { details: { reason, ...details } });
    this.name = 'MessageDecodeError';
  }
}

export function invalidArgument(message: string, details?: Record<string, unknown>): StreamingError {
  return new StreamingError(ErrorCode.INVALID_ARGUMENT, message, details ? { details } : {});
}

export function unrecoverable(message: string, details?: Record<string, unknown>): StreamingError {
  return new StreamingError(ErrorCode.UNRECOVERABLE, message, details ? { details } : {});
}

export function isStreamingError(e: unknown): e is StreamingError {
  return e instanceof StreamingError;
}

export function hasCode(e: unknown, code: ErrorCode): boolean {
  return e instanceof StreamingError && e.code === code;
}

export function isFenced(e: unknown): boolean {
  return hasCode(e, ErrorCode.CHANNEL_FENCED);
}

export function isRetriable(e: unknown): boolean {
  return e instanceof StreamingError && e.retriable;
}

/** True when the pchannel moved (or is moving): wait for the new owner to be ready, then retry. */
export function needsNewAssignment(e: unknown): boolean {
  return e instanceof StreamingError && NEEDS_NEW_ASSIGNMENT.has(e.code);
}

/** Wraps anything thrown into a StreamingError, keeping the original as cause. */
export function toStreamingError(e: unknown): StreamingError {
  if (e instanceof StreamingError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new StreamingError(ErrorCode.UNKNOWN, message, { cause: e });
}

export function assertNever(x: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
}
