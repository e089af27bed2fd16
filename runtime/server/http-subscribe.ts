/**
 * A subscription streamed as NDJSON over one HTTP response: one JSON message per line, in the
 * order the subscription delivers them (strictly increasing timeticks), plus
 *
 * - `{"heartbeat":true,"lastTimetick":"…"}` after `heartbeatMs` without a line (the pchannel may be
 *   moving; the subscription resumes by itself), and as the first line when no message came within
 *   `firstMessageWaitMs` (the 200 waits that long for the first message, so that the subscription
 *   is in place when the caller sees it), and
 * - `{"error":{code,message,retriable,details?}}` as the last line when the subscription fails or
 *   the server shuts down (ON_SHUTDOWN).
 *
 * Backpressure: while the socket's write buffer is full the stream does not pull from the
 * subscription (it waits for 'drain'), so a slow reader holds the subscription's credits, never a
 * growing buffer. A client that disconnects closes the subscription.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock, TimerHandle } from '../clock';
import { toStreamingError, type StreamingError } from '../errors';
import type { Logger } from '../logger';
import type { Subscription } from '../client/api';
import type { LogMessage } from '../message/types';
import { stringifyJson } from './json';

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

/** Instrumentation of the gateway, for tests and metrics to wait on instead of sleeping. */
export interface HttpEvents {
  /**
   * `subscribe.open` (the 200 went out), `subscribe.blocked` (socket buffer full: not pulling),
   * `subscribe.resumed` ('drain'), `subscribe.end` ({how: ended|disconnected|failed, delivered}).
   */
  emit(event: string, data: Record<string, unknown>): void;
}

export interface SubscriptionStreamOptions {
  clock: Clock;
  logger: Logger;
  /** A heartbeat line after this long without a line (ms). */
  heartbeatMs: number;
  /** How long the 200 waits for the first message (ms). */
  firstMessageWaitMs: number;
  events?: HttpEvents;
}

type End = { kind: 'ended' } | { kind: 'disconnected' } | { kind: 'failed'; error: StreamingError };

export class SubscriptionStream {
  private ended: End | undefined;
  private readonly stopped: Promise<undefined>;
  private resolveStopped!: (v: undefined) => void;
  private readonly it: AsyncIterator<LogMessage>;
  private first: LogMessage | undefined;
  /** A pull that open() started and run() finishes. */
  private pending: Promise<IteratorResult<LogMessage>> | undefined;
  /** True once the 200 and its headers went out: from then on failures are error lines. */
  private streaming = false;
  private heartbeat: TimerHandle | undefined;
  private lastWriteAt: number;
  /** Kept: a response lets go of its socket when it closes. */
  private readonly socket: Socket | undefined;
  /** Messages written so far. */
  delivered = 0;

  constructor(
    private readonly sub: Subscription,
    private readonly res: ServerResponse,
    private readonly opts: SubscriptionStreamOptions,
  ) {
    this.lastWriteAt = opts.clock.monotonic();
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    this.it = sub[Symbol.asyncIterator]();
    this.socket = res.socket ?? undefined;
    res.on('close', () => {
      if (!res.writableFinished) this.finish({ kind: 'disconnected' });
    });
  }

  /**
   * Waits for the first message (at most `firstMessageWaitMs`), so that the subscription is in
   * place when the caller sees the 200, and a subscription that cannot start is an ordinary error
   * answer. Throws that error; returns false when the caller went away or stop() came first. When
   * nothing arrives in time (an idle pchannel) the stream opens anyway, with a heartbeat line.
   */
  async open(): Promise<boolean> {
    this.pending = this.it.next();
    let timer: TimerHandle | undefined;
    const waited = new Promise<'waited'>((resolve) => (timer = this.opts.clock.setTimeout(() => resolve('waited'), this.opts.firstMessageWaitMs)));
    let r: IteratorResult<LogMessage> | undefined | 'waited';
    try {
      r = await Promise.race([this.pending, this.stopped, waited]);
    } catch (e) {
      this.finish({ kind: 'failed', error: toStreamingError(e) });
      throw toStreamingError(e);
    } finally {
      timer?.cancel();
    }
    if (this.ended) {
      if (this.ended.kind === 'failed') throw this.ended.error;
      return false;
    }
    if (r === 'waited') return true; // the pull goes on in run()
    this.pending = undefined;
    if (r === undefined || r.done) this.finish({ kind: 'ended' });
    else this.first = r.value;
    return true;
  }

  /** Streams until the subscription ends or fails, the client goes away, or stop() is called. */
  async run(): Promise<void> {
    const { res, opts } = this;
    if (res.destroyed) return;
    res.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    this.streaming = true;
    opts.events?.emit('subscribe.open', {});
    if (this.ended) {
      // Ended between open() and now.
      this.streaming = false;
      this.endResponse(this.ended);
      return;
    }
    if (this.first === undefined) this.writeLine(stringifyJson({ heartbeat: true, lastTimetick: this.sub.lastTimetick }));
    this.heartbeat = opts.clock.setInterval(() => this.beat(), Math.max(10, Math.floor(opts.heartbeatMs / 2)));
    try {
      let next: LogMessage | undefined = this.first;
      this.first = undefined;
      while (!this.ended) {
        if (next !== undefined) {
          const ok = this.writeLine(stringifyJson(next));
          this.delivered++;
          if (!ok) {
            opts.events?.emit('subscribe.blocked', { delivered: this.delivered });
            await this.drained();
            if (!this.ended) opts.events?.emit('subscribe.resumed', { delivered: this.delivered });
          }
          if (this.ended) break;
        }
        // Race the pull with the end: a disconnect must not wait for the next message.
        const pull = this.pending ?? this.it.next();
        this.pending = undefined;
        const r = await Promise.race([pull, this.stopped]);
        if (r === undefined || this.ended) break;
        if (r.done) {
          this.finish({ kind: 'ended' });
          break;
        }
        next = r.value;
      }
    } catch (e) {
      this.finish({ kind: 'failed', error: toStreamingError(e) });
    }
    const how = (this.ended as End | undefined)?.kind;
    opts.logger.debug('subscription stream ended', { how, delivered: this.delivered });
    opts.events?.emit('subscribe.end', { how, delivered: this.delivered });
  }

  /** Ends the stream (with an error line such as ON_SHUTDOWN once streaming); the subscription is closed. */
  stop(error: StreamingError): void {
    this.finish({ kind: 'failed', error });
  }

  private finish(end: End): void {
    if (this.ended) return;
    this.ended = end;
    this.heartbeat?.cancel();
    this.sub.close();
    if (this.streaming) this.endResponse(end);
    this.resolveStopped(undefined);
  }

  private endResponse(end: End): void {
    const { res } = this;
    if (end.kind === 'disconnected') {
      // The reader is gone (or half-closed its side): drop the connection rather than keep it half open.
      this.socket?.destroy();
      return;
    }
    if (res.writableEnded || res.destroyed) return;
    if (end.kind === 'failed') {
      this.opts.logger.warn('subscription stream ended by an error', { code: end.error.code, message: end.error.message });
      res.write(`${stringifyJson({ error: end.error.toJSON() })}\n`);
      // After a failure (shutdown included) the connection is not reused: close it once the last line is out.
      res.end(() => res.socket?.end());
      return;
    }
    res.end();
  }

  private writeLine(line: string): boolean {
    this.lastWriteAt = this.opts.clock.monotonic();
    return this.res.write(`${line}\n`);
  }

  /** Resolves on 'drain' or when the stream ends, whichever is first. */
  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        resolve();
      };
      this.res.on('drain', done);
      void this.stopped.then(done);
    });
  }

  private beat(): void {
    if (this.ended || this.res.writableNeedDrain) return;
    if (this.opts.clock.monotonic() - this.lastWriteAt < this.opts.heartbeatMs) return;
    this.writeLine(stringifyJson({ heartbeat: true, lastTimetick: this.sub.lastTimetick }));
  }
}
