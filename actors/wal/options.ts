/** Options of one WAL (one pchannel). Every field has a default; units are in the names. */
export interface WalOptions {
  /** Most messages written by one group commit. Default 1024. */
  groupCommitMaxMessages: number;
  /** Most bytes written by one group commit. Default 4 MiB. */
  groupCommitMaxBytes: number;
  /**
   * Group commits handed to the backend at once (it keeps their call order). Above 1, appends are
   * encoded while the previous group is written. Default 2.
   */
  maxInFlightWrites: number;
  /** Extra wait before a group commit starts, to gather more appends. Default 0 ms (gather only what queued meanwhile). */
  groupCommitDelayMs: number;
  /** TimeTick cadence: persisted when something was written since the last one, else an idle tick for readers. Default 200 ms. */
  timetickIntervalMs: number;
  /** Write-ahead buffer: the in-memory tail readers tail from. */
  writeAheadBuffer: {
    /** Default 64 MiB. */
    capacityBytes: number;
    /** Entries older than this are evicted (the last entry never is). Default 30000 ms. */
    keepaliveMs: number;
  };
  /** Keepalive of a transaction that does not name one. Default 10000 ms. */
  defaultTxnKeepaliveMs: number;
  /** Largest encoded message accepted. Default 4 MiB. */
  maxMessageBytes: number;
  /** Appends waiting (for a lock, the TSO or the write pipe) beyond this are refused with RESOURCE_EXHAUSTED. Default 65536. */
  maxPendingAppends: number;
  /** Messages a subscriber may have delivered but not consumed (its credit window). Default 1024. */
  subscriberCredits: number;
  /** How long close() waits for in-flight writes before giving up on them. Default 3000 ms. */
  closeTimeoutMs: number;
  /** Most recent idempotency keys remembered per pchannel (a retried append with one of them is answered, not written). Default 65536. */
  idempotencyWindow: number;
}

export const DEFAULT_WAL_OPTIONS: WalOptions = {
  groupCommitMaxMessages: 1024,
  groupCommitMaxBytes: 4 * 1024 * 1024,
  maxInFlightWrites: 2,
  groupCommitDelayMs: 0,
  timetickIntervalMs: 200,
  writeAheadBuffer: { capacityBytes: 64 * 1024 * 1024, keepaliveMs: 30_000 },
  defaultTxnKeepaliveMs: 10_000,
  maxMessageBytes: 4 * 1024 * 1024,
  maxPendingAppends: 65_536,
  subscriberCredits: 1024,
  closeTimeoutMs: 3_000,
  idempotencyWindow: 65_536,
};

export function walOptions(partial: Partial<WalOptions> = {}): WalOptions {
  return {
    ...DEFAULT_WAL_OPTIONS,
    ...partial,
    writeAheadBuffer: { ...DEFAULT_WAL_OPTIONS.writeAheadBuffer, ...(partial.writeAheadBuffer ?? {}) },
  };
}
