/**
 * The client side of one open stream: items arrive from the reply stream into a queue bounded by
 * the credit window (the server never sends more than the credits granted); each item the consumer
 * takes is a credit owed back, granted in batches of half the window. The stream ends with `end`
 * (done), an error item (thrown after the buffered items), `close()` (cancels at the server) or
 * silence longer than the heartbeat timeout (a retriable UNKNOWN: the server is gone).
 */
import { ErrorCode, StreamingError } from '../errors';
import type { StreamCommandType } from './commands';
import type { MailboxStream } from './mailbox';

/** What a client stream needs from its mailbox (a literal in tests). */
export interface ClientStreamHost {
  /** Sends a credit grant or a cancel for stream `id` (best effort: a lost one ends in a heartbeat timeout). */
  control(kind: 'credit' | 'cancel', id: string, address: string, credits?: number): void;
  /** Forgets the stream (no more routing of replies to it). */
  forget(id: string): void;
  monotonic(): number;
}

type Waiter<T> = { resolve(r: IteratorResult<T>): void; reject(e: unknown): void };

export class ClientStream<T> implements MailboxStream<T> {
  private readonly queue: T[] = [];
  private head = 0;
  private waiter: Waiter<T> | undefined;
  private ended = false;
  private error: StreamingError | undefined;
  private owed = 0;
  private readonly grantBatch: number;
  /** Monotonic ms of the last reply heard on this stream. */
  lastHeard: number;
  /** Items received (for tests and metrics). */
  received = 0;

  constructor(
    readonly id: string,
    readonly type: StreamCommandType,
    readonly address: string,
    readonly credits: number,
    private readonly host: ClientStreamHost,
  ) {
    this.grantBatch = Math.max(1, Math.floor(credits / 2));
    this.lastHeard = host.monotonic();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Items received but not taken yet. */
  get buffered(): number {
    return this.queue.length - this.head;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.queue.length) return Promise.resolve({ value: this.take(), done: false });
    if (this.ended) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    if (this.waiter) return Promise.reject(new StreamingError(ErrorCode.INVALID_ARGUMENT, 'a mailbox stream has one consumer: next() called again before the previous one resolved', { details: { field: 'next' } }));
    return new Promise<IteratorResult<T>>((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Cancels the stream at the server; the consumer sees `done`. Idempotent. */
  close(): void {
    if (this.ended) return;
    this.host.control('cancel', this.id, this.address);
    this.finish(undefined, true);
  }

  /** A reply was heard on this stream (item, heartbeat, open). */
  touch(): void {
    this.lastHeard = this.host.monotonic();
  }

  push(item: T): void {
    if (this.ended) return;
    this.touch();
    this.received++;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      this.owe();
      w.resolve({ value: item, done: false });
      return;
    }
    this.queue.push(item);
  }

  /** The server ended the stream normally. */
  end(): void {
    this.finish(undefined, false);
  }

  /** The stream failed (server error item, decode error, silence, shutdown); `cancelAtServer` when the server may still be sending. */
  fail(error: StreamingError, cancelAtServer = false): void {
    if (this.ended) return;
    if (cancelAtServer) this.host.control('cancel', this.id, this.address);
    this.finish(error, false);
  }

  private finish(error: StreamingError | undefined, dropBuffered: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    if (dropBuffered) {
      this.queue.length = 0;
      this.head = 0;
    }
    this.host.forget(this.id);
    const w = this.waiter;
    this.waiter = undefined;
    if (w) {
      if (error) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  private take(): T {
    const item = this.queue[this.head]!;
    this.queue[this.head] = undefined as unknown as T;
    this.head++;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
    this.owe();
    return item;
  }

  /** One item was taken: its credit goes back to the server, in batches. */
  private owe(): void {
    if (this.ended) return;
    this.owed++;
    if (this.owed >= this.grantBatch) {
      const n = this.owed;
      this.owed = 0;
      this.host.control('credit', this.id, this.address, n);
    }
  }
}
