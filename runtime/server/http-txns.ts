/**
 * The transactions the HTTP gateway holds open for its callers, by id (the decimal timetick of the
 * BeginTxn). Bounded: beyond `maxOpen` a begin is RESOURCE_EXHAUSTED. An entry is forgotten after
 * its keepalive passes without use (the WAL expires the transaction itself on the same clock), and
 * when it is committed or rolled back. An id the registry does not hold is TRANSACTION_EXPIRED with
 * `details.reason = 'not found'` (404 at the edge).
 */
import type { Clock, TimerHandle } from '../clock';
import { ErrorCode, StreamingError } from '../errors';
import type { ClientTxn } from '../client/api';
import { NOT_FOUND } from './http-errors';

export interface TxnRegistryOptions {
  clock: Clock;
  /** Most transactions open at once. Default 1024. */
  maxOpen?: number;
  /** Idle time before an entry is forgotten when the transaction named no keepalive (ms). Default 10000, the WAL's default. */
  defaultKeepaliveMs?: number;
}

interface Entry {
  txn: ClientTxn;
  collection: string;
  keepaliveMs: number;
  expiresAt: number;
}

export class TxnRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly maxOpen: number;
  private readonly defaultKeepaliveMs: number;
  private sweeper: TimerHandle | undefined;

  constructor(opts: TxnRegistryOptions) {
    this.clock = opts.clock;
    this.maxOpen = opts.maxOpen ?? 1024;
    this.defaultKeepaliveMs = opts.defaultKeepaliveMs ?? 10_000;
    this.sweeper = this.clock.setInterval(() => this.sweep(), Math.max(100, Math.min(1_000, this.defaultKeepaliveMs)));
  }

  get size(): number {
    return this.entries.size;
  }

  /** Fails when the registry is full (after forgetting expired entries). */
  reserve(): void {
    if (this.entries.size < this.maxOpen) return;
    this.sweep();
    if (this.entries.size >= this.maxOpen) {
      throw new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, `too many open transactions on this gateway (${this.maxOpen}); commit or roll back some`, {
        details: { limit: this.maxOpen },
      });
    }
  }

  add(txn: ClientTxn, collection: string, keepaliveMs: number | undefined): string {
    this.reserve();
    const id = txn.id.toString();
    const k = keepaliveMs ?? this.defaultKeepaliveMs;
    this.entries.set(id, { txn, collection, keepaliveMs: k, expiresAt: this.clock.monotonic() + k });
    return id;
  }

  /** The open transaction `id`, its keepalive renewed. */
  get(id: string): { txn: ClientTxn; collection: string } {
    const e = this.entries.get(id);
    const now = this.clock.monotonic();
    if (!e || e.expiresAt <= now) {
      this.entries.delete(id);
      throw new StreamingError(ErrorCode.TRANSACTION_EXPIRED, `no open transaction ${id} on this gateway (expired, finished or never begun)`, {
        details: { field: 'id', reason: NOT_FOUND, txnId: id },
      });
    }
    e.expiresAt = now + e.keepaliveMs;
    return e;
  }

  /** Takes `id` out (commit, rollback): a second finish is "not found". */
  take(id: string): { txn: ClientTxn; collection: string } {
    const e = this.get(id);
    this.entries.delete(id);
    return e;
  }

  forget(id: string): void {
    this.entries.delete(id);
  }

  private sweep(): void {
    const now = this.clock.monotonic();
    for (const [id, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(id);
  }

  close(): void {
    this.sweeper?.cancel();
    this.sweeper = undefined;
    this.entries.clear();
  }
}
