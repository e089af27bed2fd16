/**
 * The server side of one open stream: pulls the handler's iterator only while the client has
 * credit (so the server is never more than the granted credits ahead of the consumer), sends each
 * item, and ends with `end`, an error item, or silently when the client cancelled or is gone. The
 * iterator's `return()` is always called when the stream ends early (a Scanner then closes).
 */
import { ErrorCode, StreamingError, toStreamingError } from '../errors';

export type SendOutcome = 'sent' | 'replaced' | 'gone';

/** What a server stream needs from its server (a literal in tests). */
export interface ServerStreamHost<T> {
  sendItem(id: string, replyTo: string, item: T): Promise<SendOutcome>;
  sendEnd(id: string, replyTo: string, error: StreamingError | undefined): Promise<SendOutcome>;
  onItem(): void;
  monotonic(): number;
}

const CANCELLED = Symbol('cancelled');
/** Item sends in flight per stream before the pump waits for the oldest. */
const SEND_WINDOW = 32;

export class ServerStream<T> {
  private credit: number;
  private cancelled = false;
  private endError: StreamingError | undefined;
  private wake: (() => void) | undefined;
  private readonly cancelledSignal: Promise<typeof CANCELLED>;
  private signalCancelled!: () => void;
  /** Monotonic ms of the last reply sent on this stream (heartbeats fill silences). */
  lastSent: number;
  /** Items pulled from the iterator. */
  pulled = 0;

  constructor(
    readonly id: string,
    readonly replyTo: string,
    credits: number,
    private readonly host: ServerStreamHost<T>,
  ) {
    this.credit = credits;
    this.lastSent = host.monotonic();
    this.cancelledSignal = new Promise((resolve) => (this.signalCancelled = () => resolve(CANCELLED)));
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  /** The error the stream was ended with by its server (shutdown), if any. */
  get shutdownError(): StreamingError | undefined {
    return this.endError;
  }

  grant(n: number): void {
    this.credit += n;
    this.poke();
  }

  /** Ends the stream: silently (the client cancelled or is gone) or with `error` sent to the client (shutdown). */
  cancel(error?: StreamingError): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.endError = error;
    this.signalCancelled();
    this.poke();
  }

  /**
   * Runs until the iterator ends, the stream is cancelled, or the client is gone. Never throws.
   * Sends are pipelined (up to SEND_WINDOW unconfirmed, in order on one connection) so a stream is not
   * paced by one round trip per item; credits still bound what is pulled.
   */
  async pump(it: AsyncIterator<T>): Promise<void> {
    let exhausted = false;
    const window: Promise<void>[] = [];
    const drain = (): Promise<unknown> => Promise.all(window.splice(0));
    try {
      for (;;) {
        if (this.cancelled) break;
        if (this.credit <= 0) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          continue;
        }
        this.credit--;
        this.pulled++;
        const r = await Promise.race([it.next(), this.cancelledSignal]);
        if (r === CANCELLED) break;
        if (r.done) {
          exhausted = true;
          await drain();
          if (!this.cancelled) await this.host.sendEnd(this.id, this.replyTo, undefined);
          return;
        }
        if (this.cancelled) break;
        this.lastSent = this.host.monotonic();
        window.push(
          this.host.sendItem(this.id, this.replyTo, r.value).then((outcome) => {
            if (outcome === 'sent') this.host.onItem();
            // 'replaced': the item could not be sent and an error item ended the stream; 'gone': no client.
            else this.cancel();
          }),
        );
        if (window.length >= SEND_WINDOW) await window.shift();
      }
      await drain();
      if (this.endError) await this.host.sendEnd(this.id, this.replyTo, this.endError);
    } catch (e) {
      exhausted = true; // an iterator that threw is finished
      await drain();
      if (!this.cancelled) {
        const err = toStreamingError(e);
        await this.host.sendEnd(this.id, this.replyTo, err).catch(() => undefined);
      }
    } finally {
      this.cancelled = true;
      this.signalCancelled();
      // Not awaited: an async generator queues return() behind a pending next() that may never resolve.
      if (!exhausted) closeIterator(it);
    }
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

function closeIterator(it: AsyncIterator<unknown>): void {
  try {
    const r = it.return?.();
    if (r) r.then(undefined, () => undefined);
  } catch {
    // the iterator's own shutdown failed; nothing to tell anyone
  }
}

export function noStreamError(id: string, address: string): StreamingError {
  return new StreamingError(ErrorCode.ON_SHUTDOWN, `no open stream ${id} at ${address} (the server restarted or the stream ended)`, {
    retriable: true,
    details: { stream: id, address },
  });
}
