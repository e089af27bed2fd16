/**
 * One subscription to one pchannel (optionally narrowed to a vchannel). It catches up from the
 * backend, switches to the write-ahead buffer as soon as the buffer covers its position, and falls
 * back to the backend when it was evicted from the buffer. It delivers strictly increasing
 * timeticks, whole committed transactions as one Txn message, and never more than `credits`
 * undelivered messages: a slow consumer stops the reading, nothing piles up.
 *
 * A scanner is a plain async pump, not an actor: it has one consumer and does I/O by nature; an
 * actor hop per message would cost without buying isolation (the WAL actor owns and closes it).
 */
import { ErrorCode, StreamingError, toStreamingError } from '../../../runtime/errors';
import type { Logger } from '../../../runtime/logger';
import { toLogMessage } from '../../../runtime/message/codec';
import type { Timetick } from '../../../runtime/message/timetick';
import type { LogMessage } from '../../../runtime/message/types';
import type { MessageId } from '../../../runtime/message/message-id';
import type { DeliverPolicy, WalLog } from '../../../storage/wal/backend';
import type { WriteAheadBuffer } from '../write-ahead-buffer';
import { compileFilters, type DeliverFilters, type MessagePredicate } from './filters';
import { TxnBuffer } from './txn-buffer';

export interface SubscribeOptions {
  /** Only messages of this vchannel (plus pchannel-level ones such as TimeTick). Undefined = the whole pchannel. */
  vchannel?: string;
  policy: DeliverPolicy;
  filters?: DeliverFilters;
  /** Credit window: most messages read ahead of the consumer. */
  credits?: number;
}

export interface ScannerDeps {
  pchannel: string;
  log: WalLog;
  wab: WriteAheadBuffer;
  logger: Logger;
  defaultCredits: number;
  onClose(scanner: Scanner): void;
}

export type ScannerMode = 'catchup' | 'tail' | 'closed';

let scannerSeq = 0;

export class Scanner implements AsyncIterableIterator<LogMessage> {
  readonly id = ++scannerSeq;
  private mode: ScannerMode = 'catchup';
  private readonly queue: LogMessage[] = [];
  private qHead = 0;
  private readonly credits: number;
  private readonly filter: MessagePredicate;
  private readonly txns = new TxnBuffer();
  /** Last raw (unfiltered) message seen: for dedupe and for resuming after eviction. */
  private lastSeenTt: Timetick = -1n;
  private lastSeenLc: MessageId = '';
  /** next() calls waiting for a message, in call order (a consumer may call next() again before the first resolves). */
  private consumerWaiters: (() => void)[] = [];
  private producerWake: (() => void) | undefined;
  private readonly abort = new AbortController();
  private error: StreamingError | undefined;
  private ended = false;
  /** How often the scanner switched between backend and buffer (for tests and status). */
  switches = { toTail: 0, toCatchup: 0 };

  constructor(
    private readonly deps: ScannerDeps,
    private readonly opts: SubscribeOptions,
  ) {
    this.credits = Math.max(1, opts.credits ?? deps.defaultCredits);
    this.filter = compileFilters(opts.filters);
    void this.run();
  }

  get currentMode(): ScannerMode {
    return this.mode;
  }

  get buffered(): number {
    return this.queue.length - this.qHead;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<LogMessage> {
    return this;
  }

  next(): Promise<IteratorResult<LogMessage>> {
    if (this.qHead < this.queue.length) return Promise.resolve({ value: this.take(), done: false });
    if (this.ended) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    return new Promise<void>((resolve) => this.consumerWaiters.push(resolve)).then(() => this.next());
  }

  return(): Promise<IteratorResult<LogMessage>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Ends the subscription; the consumer sees `done`. Idempotent. */
  close(): void {
    this.finish(undefined);
  }

  /** Ends the subscription with an error the consumer receives after the buffered messages. */
  fail(error: StreamingError): void {
    this.finish(error);
  }

  private finish(error: StreamingError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.mode = 'closed';
    this.abort.abort();
    this.wakeConsumer();
    this.wakeProducer();
    this.deps.onClose(this);
  }

  private take(): LogMessage {
    const m = this.queue[this.qHead]!;
    this.queue[this.qHead] = undefined as unknown as LogMessage;
    this.qHead++;
    if (this.qHead === this.queue.length) {
      this.queue.length = 0;
      this.qHead = 0;
    }
    this.wakeProducer();
    return m;
  }

  private wakeConsumer(): void {
    if (this.consumerWaiters.length === 0) return;
    const waiters = this.consumerWaiters;
    this.consumerWaiters = [];
    for (const w of waiters) w();
  }

  private wakeProducer(): void {
    const w = this.producerWake;
    this.producerWake = undefined;
    w?.();
  }

  private async waitForCredit(): Promise<void> {
    while (!this.ended && this.queue.length - this.qHead >= this.credits) {
      await new Promise<void>((resolve) => (this.producerWake = resolve));
    }
  }

  /** Processes one raw message from either source. */
  private offer(msg: LogMessage): void {
    if (msg.timetick <= this.lastSeenTt) return; // already seen (source switch)
    this.lastSeenTt = msg.timetick;
    this.lastSeenLc = msg.lastConfirmedId;
    const vch = this.opts.vchannel;
    if (vch !== undefined && msg.vchannel !== '' && msg.vchannel !== vch) return;
    const out = this.txns.handle(msg);
    if (out === undefined || !this.filter(out)) return;
    this.queue.push(out);
    this.wakeConsumer();
  }

  private async run(): Promise<void> {
    try {
      let start = this.startPosition();
      for (;;) {
        if (this.ended) return;
        if (start.kind === 'tail') {
          this.mode = 'tail';
          const evicted = await this.tail(start.offset);
          if (this.ended) return;
          if (!evicted) {
            this.fail(new StreamingError(ErrorCode.ON_SHUTDOWN, `pchannel ${this.deps.pchannel} closed`));
            return;
          }
          this.switches.toCatchup++;
          this.deps.logger.debug('scanner evicted from write-ahead buffer, catching up from the backend', { scanner: this.id, lastTimetick: this.lastSeenTt });
          start = { kind: 'catchup', policy: this.lastSeenLc === '' ? { type: 'all' } : { type: 'startFrom', id: this.lastSeenLc } };
        } else {
          this.mode = 'catchup';
          const offset = await this.catchup(start.policy);
          if (this.ended) return;
          if (offset === undefined) {
            this.fail(new StreamingError(ErrorCode.ON_SHUTDOWN, `pchannel ${this.deps.pchannel} closed`));
            return;
          }
          this.switches.toTail++;
          start = { kind: 'tail', offset };
        }
      }
    } catch (e) {
      const err = toStreamingError(e);
      this.deps.logger.warn('scanner failed', { scanner: this.id, error: err.message });
      this.fail(err);
    }
  }

  private startPosition(): { kind: 'tail'; offset: number } | { kind: 'catchup'; policy: DeliverPolicy } {
    const { wab } = this.deps;
    const p = this.opts.policy;
    switch (p.type) {
      case 'latest':
        return { kind: 'tail', offset: wab.nextOffset };
      case 'startFrom':
      case 'startAfter': {
        const offset = wab.offsetAfterId(p.id, p.type === 'startFrom');
        return offset === undefined ? { kind: 'catchup', policy: p } : { kind: 'tail', offset };
      }
      case 'all':
        return { kind: 'catchup', policy: p };
    }
  }

  /** Reads the buffer from `offset`. Returns true when evicted (fall back), false when the buffer closed. */
  private async tail(offset: number): Promise<boolean> {
    const { wab } = this.deps;
    for (;;) {
      if (this.ended) return false;
      if (this.queue.length - this.qHead >= this.credits) await this.waitForCredit();
      const msg = wab.get(offset);
      if (msg !== undefined) {
        offset++;
        this.offer(msg);
        continue;
      }
      if (offset < wab.firstOffset) return true;
      if (wab.isClosed) return false;
      await wab.waitFor(offset);
    }
  }

  /** Reads the backend until the buffer covers the position; returns the buffer offset to tail from. */
  private async catchup(policy: DeliverPolicy): Promise<number | undefined> {
    const { wab, log } = this.deps;
    const local = new AbortController();
    const onAbort = (): void => local.abort();
    this.abort.signal.addEventListener('abort', onAbort);
    try {
      for await (const entry of log.read({ policy, signal: local.signal })) {
        if (this.ended) return undefined;
        if (this.queue.length - this.qHead >= this.credits) await this.waitForCredit();
        this.offer(toLogMessage(entry));
        const offset = wab.offsetAfterId(entry.id, false);
        if (offset !== undefined) return offset;
      }
      return undefined;
    } finally {
      local.abort();
      this.abort.signal.removeEventListener('abort', onAbort);
    }
  }
}
