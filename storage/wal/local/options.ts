/**
 * Options of the local-file WAL backend, validated once at construction.
 */
import { type Clock, systemClock } from '../../../runtime/clock';
import { invalidArgument } from '../../../runtime/errors';
import { createLogger } from '../../../runtime/logger';

/**
 * When an append is acknowledged:
 * - `always`: a call resolves only after its bytes are written and fdatasync'ed. Calls that queue
 *   up while a write is in flight share the next write(2) + fdatasync (up to 16 MiB): the same
 *   durability, one fsync for all of them (the WAL actor keeps up to `maxInFlightWrites` group
 *   commits queued here).
 * - `interval`: a call resolves after write(2) (coalesced the same way); a timer fdatasyncs every
 *   `fsyncIntervalMs`. A process crash loses nothing acknowledged; a power loss can lose the
 *   last interval.
 */
export type FsyncPolicy = 'always' | 'interval';

/** Minimal logger the backend needs (winston's Logger fits). */
export interface LocalWalLogger {
  warn(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
}

export interface LocalWalBackendOptions {
  /** Root directory; one sub-directory per pchannel. Created when missing. Required. */
  dir: string;
  /** Durability of an acknowledged append, see FsyncPolicy. Required (no default: it is a deployment decision). */
  fsync: FsyncPolicy;
  /** Period of the background fdatasync under `interval`, in milliseconds. Default 100. */
  fsyncIntervalMs?: number;
  /** Size at which the active segment file rolls over, in bytes. Default 64 MiB (67108864). Minimum 1024. */
  segmentBytes?: number;
  /**
   * How often a reader that cannot rely on an in-process writer (the writer is in another process,
   * or gone) looks at the files for new entries, in milliseconds. Default 10. Readers of a writer
   * in the same backend instance are woken at once and only poll at 10× this period to notice a
   * writer in another process taking over.
   */
  pollIntervalMs?: number;
  /** Bytes requested per read(2) by readers and recovery, in bytes. Default 1 MiB. Minimum 4096. */
  readChunkBytes?: number;
  /** Source of timers and wall time. Default systemClock. */
  clock?: Clock;
  /** Default: the `backend.local` namespaced logger. */
  logger?: LocalWalLogger;
}

export interface ResolvedLocalOptions {
  readonly dir: string;
  readonly fsync: FsyncPolicy;
  readonly fsyncIntervalMs: number;
  readonly segmentBytes: number;
  readonly pollIntervalMs: number;
  readonly readChunkBytes: number;
  readonly clock: Clock;
  readonly logger: LocalWalLogger;
}

export const LOCAL_WAL_DEFAULTS = {
  fsyncIntervalMs: 100,
  segmentBytes: 64 * 1024 * 1024,
  pollIntervalMs: 10,
  readChunkBytes: 1024 * 1024,
} as const;

const POLICIES: readonly FsyncPolicy[] = ['always', 'interval'];

export function resolveLocalOptions(o: LocalWalBackendOptions): ResolvedLocalOptions {
  if (typeof o.dir !== 'string' || o.dir.length === 0) throw invalidArgument('local wal: dir must be a non-empty path', { field: 'dir' });
  if (!POLICIES.includes(o.fsync)) {
    throw invalidArgument(`local wal: fsync must be one of ${POLICIES.join(', ')}`, { field: 'fsync', value: o.fsync });
  }
  const int = (field: string, v: number | undefined, dflt: number, min: number): number => {
    const x = v ?? dflt;
    if (!Number.isSafeInteger(x) || x < min) throw invalidArgument(`local wal: ${field} must be an integer >= ${min}`, { field, value: v });
    return x;
  };
  return {
    dir: o.dir,
    fsync: o.fsync,
    fsyncIntervalMs: int('fsyncIntervalMs', o.fsyncIntervalMs, LOCAL_WAL_DEFAULTS.fsyncIntervalMs, 1),
    segmentBytes: int('segmentBytes', o.segmentBytes, LOCAL_WAL_DEFAULTS.segmentBytes, 1024),
    pollIntervalMs: int('pollIntervalMs', o.pollIntervalMs, LOCAL_WAL_DEFAULTS.pollIntervalMs, 1),
    readChunkBytes: int('readChunkBytes', o.readChunkBytes, LOCAL_WAL_DEFAULTS.readChunkBytes, 4096),
    clock: o.clock ?? systemClock,
    logger: o.logger ?? createLogger('backend.local'),
  };
}
