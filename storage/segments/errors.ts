/**
 * Typed errors of segment files. A corrupt segment is UNRECOVERABLE: reading it again gives the
 * same bytes; it must be rebuilt from the WAL (or restored). `details.reason` says what is wrong.
 */
import { ErrorCode, StreamingError } from '../../runtime/errors';

export const SegmentCorruptReason = {
  CHECKSUM_MISMATCH: 'checksum mismatch',
  SIZE_MISMATCH: 'size mismatch',
  MISSING_FILE: 'data file missing',
  BAD_MANIFEST: 'bad manifest',
  UNSUPPORTED_VERSION: 'unsupported format version',
  BAD_ARROW: 'not a readable Arrow IPC file',
  SCHEMA_MISMATCH: 'Arrow schema does not match the manifest',
  ROW_COUNT_MISMATCH: 'row count does not match the manifest',
  BAD_VALUE: 'value cannot be represented',
} as const;
export type SegmentCorruptReason = (typeof SegmentCorruptReason)[keyof typeof SegmentCorruptReason];

export class SegmentCorruptError extends StreamingError {
  readonly reason: SegmentCorruptReason;
  constructor(reason: SegmentCorruptReason, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(ErrorCode.UNRECOVERABLE, `corrupt segment: ${message}`, { cause, retriable: false, details: { reason, ...details } });
    this.name = 'SegmentCorruptError';
    this.reason = reason;
  }
}

/** The segment is already in storage with different content (a second flush of one segment id). */
export class SegmentConflictError extends StreamingError {
  constructor(path: string) {
    super(ErrorCode.UNRECOVERABLE, `segment already stored with a different manifest: ${path}`, {
      retriable: false,
      details: { path, reason: 'segment exists with different content' },
    });
    this.name = 'SegmentConflictError';
  }
}
