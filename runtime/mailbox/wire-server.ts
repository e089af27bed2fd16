/**
 * One served address over a MailboxWire: reads the inbox (consumer group), checks every entry at
 * the edge (envelope, size, deadline, command schema, served type), runs handlers with bounded
 * concurrency, replies, and acknowledges each request once it has been answered (so a server that
 * dies mid-flight leaves the request pending for its restart). Streams are pumped with credits.
 */
import type { Clock } from '../clock';
import { ErrorCode, StreamingError, invalidArgument, toStreamingError } from '../errors';
import type { Logger } from '../logger';
import { decodeCommand, encodeItem, encodeResult, isStreamCommandType, type CallCommandType, type CodecLimits, type Command, type StreamCommandType } from './commands';
import { RequestKind, ReplyKind, parseRequest, replyFields, type ReplyEnvelope, type RequestEnvelope } from './envelope';
import type { CallHandler, HandlerTable, MailboxOptions, MailboxServer, RequestContext, ServerStats, StreamHandler } from './mailbox';
import { ServerStream, noStreamError, type SendOutcome } from './server-stream';
import { entryBytes, type InboxConsumer, type InboxReader, type MailboxWire, type WireEntry } from './wire';

/** What a server needs from the mailbox that runs it. */
export interface WireServerHost {
  readonly wire: MailboxWire;
  readonly options: MailboxOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly codecLimits: CodecLimits;
  /** Called once the server is closed. */
  released(address: string): void;
}

export interface WireServerOptions {
  consumer: string;
  maxInFlight: number;
  maxStreams: number;
}

type Parsed = RequestEnvelope & { commandJson?: unknown };

export class WireServer implements MailboxServer, InboxConsumer {
  private reader: InboxReader | undefined;
  private readonly earlyAcks: string[] = [];
  private readonly accepted: ReadonlySet<string>;
  private readonly running = new Set<Promise<void>>();
  private readonly streams = new Map<string, ServerStream<unknown>>();
  private inFlight = 0;
  private stopped = false;
  /** Set when close() gave up waiting: late handler completions neither reply nor acknowledge. */
  private abandoned = false;
  private closing: Promise<void> | undefined;
  private readonly counters: Omit<ServerStats, 'inFlight' | 'streams'> = { received: 0, handled: 0, replied: 0, failed: 0, expired: 0, invalid: 0, items: 0 };

  constructor(
    readonly address: string,
    private readonly handlers: HandlerTable,
    private readonly opts: WireServerOptions,
    private readonly host: WireServerHost,
  ) {
    this.accepted = new Set(Object.keys(handlers).filter((k) => typeof (handlers as Record<string, unknown>)[k] === 'function'));
  }

  async start(): Promise<void> {
    this.reader = await this.host.wire.openInbox(this.address, this.opts.consumer, this);
    // Entries may be delivered before openInbox resolves: acknowledge what they finished with meanwhile.
    const early = this.earlyAcks.splice(0);
    if (early.length > 0) this.flushAcks(early);
  }

  stats(): ServerStats {
    return { ...this.counters, inFlight: this.inFlight, streams: this.streams.size };
  }

  // ---------------------------------------------------------------- InboxConsumer

  capacity(): number {
    return this.stopped ? 0 : Math.max(0, this.opts.maxInFlight - this.inFlight);
  }

  deliver(entries: WireEntry[]): void {
    for (const entry of entries) {
      try {
        this.onEntry(entry);
      } catch (e) {
        // Never let one entry stop the reader: answer nothing, acknowledge, log.
        this.host.logger.error('mailbox: entry handling failed', { address: this.address, entry: entry.id, error: String(e) });
        this.ack(entry.id);
      }
    }
  }

  // ---------------------------------------------------------------- entries

  private onEntry(entry: WireEntry): void {
    this.counters.received++;
    if (this.stopped) return; // read while closing: stays pending for the next server
    const fields = entry.fields;
    if (fields === undefined) {
      this.ack(entry.id); // trimmed away while pending
      return;
    }
    const size = entryBytes(fields);
    if (size > this.host.options.maxRequestBytes) {
      const id = fields.get('id')?.toString('utf8');
      const replyTo = fields.get('r')?.toString('utf8');
      const error = invalidArgument(`request of ${size} bytes exceeds the limit of ${this.host.options.maxRequestBytes} bytes`, { field: 'request', size, limit: this.host.options.maxRequestBytes });
      this.refuse(entry.id, error, id, replyTo);
      return;
    }
    const parsed = parseRequest(fields);
    if (!parsed.ok) {
      this.refuse(entry.id, parsed.error, parsed.id, parsed.replyTo);
      return;
    }
    const req = parsed.request;
    switch (req.kind) {
      case RequestKind.credit:
        return this.onCredit(entry.id, req);
      case RequestKind.cancel:
        this.streams.get(req.id)?.cancel();
        this.ack(entry.id);
        return;
      case RequestKind.call:
      case RequestKind.open:
        return this.onCommand(entry.id, req);
    }
  }

  private onCredit(entryId: string, req: Parsed): void {
    const stream = this.streams.get(req.id);
    if (stream && stream.replyTo === req.replyTo) {
      stream.grant(req.credits ?? 0);
      this.ack(entryId);
      return;
    }
    // The stream is unknown here (a restart lost it, or it just ended): tell the client so it re-subscribes.
    this.track(this.reply(req.replyTo, { kind: ReplyKind.err, id: req.id, error: noStreamError(req.id, this.address) }).then(() => this.ack(entryId)));
  }

  private onCommand(entryId: string, req: Parsed): void {
    if (this.host.clock.now() > req.deadline) {
      this.counters.expired++;
      this.ack(entryId);
      return;
    }
    let command: Command;
    try {
      command = decodeCommand(req.command?.json, req.command?.bin, this.accepted);
    } catch (e) {
      this.refuse(entryId, toStreamingError(e), req.id, req.replyTo);
      return;
    }
    const streaming = isStreamCommandType(command.type);
    if (streaming !== (req.kind === RequestKind.open)) {
      const want = streaming ? 'open (a streaming command)' : 'call';
      this.refuse(entryId, invalidArgument(`${command.type} must be sent as ${want}`, { field: 'kind', expected: streaming ? 'open' : 'call' }), req.id, req.replyTo);
      return;
    }
    const ctx = this.context(req);
    if (streaming) this.runStream(entryId, req, command as Extract<Command, { type: StreamCommandType }>, ctx);
    else this.runCall(entryId, req, command as Extract<Command, { type: CallCommandType }>, ctx);
  }

  private context(req: Parsed): RequestContext {
    const clock = this.host.clock;
    return {
      address: this.address,
      requestId: req.id,
      replyTo: req.replyTo,
      deadline: req.deadline,
      remainingMs: () => Math.max(1, req.deadline - clock.now()),
    };
  }

  private runCall(entryId: string, req: Parsed, command: Extract<Command, { type: CallCommandType }>, ctx: RequestContext): void {
    const handler = this.handlers[command.type] as CallHandler<CallCommandType> | undefined;
    if (!handler) return this.refuse(entryId, invalidArgument(`no handler for ${command.type}`, { field: 'type' }), req.id, req.replyTo);
    this.counters.handled++;
    this.inFlight++;
    const work = (async () => {
      let reply: ReplyEnvelope;
      try {
        const result = await handler(command as never, ctx);
        reply = { kind: ReplyKind.ok, id: req.id, payload: encodeResult(command.type, result as never) };
      } catch (e) {
        reply = { kind: ReplyKind.err, id: req.id, error: toStreamingError(e) };
      }
      if (this.abandoned) return;
      await this.reply(req.replyTo, reply);
      this.ack(entryId);
    })().finally(() => {
      this.inFlight--;
      this.reader?.wake();
    });
    this.track(work);
  }

  private runStream(entryId: string, req: Parsed, command: Extract<Command, { type: StreamCommandType }>, ctx: RequestContext): void {
    const handler = this.handlers[command.type] as StreamHandler<StreamCommandType> | undefined;
    if (!handler) return this.refuse(entryId, invalidArgument(`no handler for ${command.type}`, { field: 'type' }), req.id, req.replyTo);
    if (this.streams.size >= this.opts.maxStreams) {
      const error = new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, `${this.address} has ${this.streams.size} open streams (the limit)`, { details: { limit: this.opts.maxStreams } });
      return this.refuse(entryId, error, req.id, req.replyTo);
    }
    const stream = new ServerStream<unknown>(req.id, req.replyTo, req.credits ?? 0, {
      sendItem: (id, replyTo, item) => this.sendItem(command.type, id, replyTo, item),
      sendEnd: (id, replyTo, error) => this.reply(replyTo, error ? { kind: ReplyKind.err, id, error } : { kind: ReplyKind.end, id }),
      onItem: () => this.counters.items++,
      monotonic: () => this.host.clock.monotonic(),
    });
    this.streams.set(req.id, stream); // before any await: a cancel right behind the open finds it
    this.counters.handled++;
    this.inFlight++;
    const work = (async () => {
      let it: AsyncIterator<unknown>;
      try {
        it = await handler(command as never, ctx);
      } catch (e) {
        this.streams.delete(req.id);
        if (!this.abandoned) {
          await this.reply(req.replyTo, { kind: ReplyKind.err, id: req.id, error: toStreamingError(e) });
          this.ack(entryId);
        }
        return;
      } finally {
        this.inFlight--;
        this.reader?.wake();
      }
      if (this.abandoned || stream.isCancelled) {
        this.streams.delete(req.id);
        void Promise.resolve(it.return?.()).catch(() => undefined);
        if (this.abandoned) return;
        const shutdown = stream.shutdownError;
        if (shutdown) await this.reply(req.replyTo, { kind: ReplyKind.err, id: req.id, error: shutdown });
        this.ack(entryId);
        return;
      }
      const opened = await this.reply(req.replyTo, { kind: ReplyKind.open, id: req.id });
      this.ack(entryId);
      if (opened !== 'sent') stream.cancel();
      await stream.pump(it);
      this.streams.delete(req.id);
    })();
    this.track(work);
  }

  private async sendItem(type: StreamCommandType, id: string, replyTo: string, item: unknown): Promise<SendOutcome> {
    let reply: ReplyEnvelope;
    try {
      reply = { kind: ReplyKind.item, id, payload: encodeItem(type, item as never, this.host.codecLimits) };
    } catch (e) {
      await this.reply(replyTo, { kind: ReplyKind.err, id, error: toStreamingError(e) });
      return 'replaced';
    }
    return this.reply(replyTo, reply);
  }

  /** Sends a reply; a too-large one becomes a RESOURCE_EXHAUSTED error reply. Never throws. */
  private async reply(replyTo: string, reply: ReplyEnvelope): Promise<SendOutcome> {
    let fields = replyFields(reply);
    let outcome: SendOutcome = 'sent';
    const size = entryBytes(fields);
    const limit = this.host.options.maxReplyBytes;
    if (size > limit) {
      const error = new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, `reply of ${size} bytes exceeds the limit of ${limit} bytes`, { retriable: false, details: { field: 'reply', size, limit } });
      fields = replyFields({ kind: ReplyKind.err, id: reply.id, error });
      outcome = 'replaced';
      reply = { kind: ReplyKind.err, id: reply.id, error };
    }
    if (reply.kind === ReplyKind.err) this.counters.failed++;
    else if (reply.kind === ReplyKind.ok || reply.kind === ReplyKind.open) this.counters.replied++;
    try {
      const delivered = await this.host.wire.sendReply(replyTo, fields);
      return delivered ? outcome : 'gone';
    } catch (e) {
      this.host.logger.warn('mailbox: reply not sent', { address: this.address, replyTo, id: reply.id, error: String(e) });
      return 'gone';
    }
  }

  /** Answers a refused entry when it names a reply-to (otherwise it can only be dropped), then acknowledges it. */
  private refuse(entryId: string, error: StreamingError, id: string | undefined, replyTo: string | undefined): void {
    if (error.code === ErrorCode.INVALID_ARGUMENT) this.counters.invalid++;
    if (id === undefined || replyTo === undefined) {
      this.host.logger.warn('mailbox: dropped an unanswerable entry', { address: this.address, entry: entryId, error: error.message });
      this.ack(entryId);
      return;
    }
    this.track(this.reply(replyTo, { kind: ReplyKind.err, id, error }).then(() => this.ack(entryId)));
  }

  private ack(entryId: string): void {
    if (!this.reader) {
      this.earlyAcks.push(entryId);
      return;
    }
    this.flushAcks([entryId]);
  }

  private flushAcks(ids: string[]): void {
    this.reader?.ack(ids).catch((e: unknown) => this.host.logger.warn('mailbox: ack failed', { address: this.address, entries: ids, error: String(e) }));
  }

  private track(p: Promise<unknown>): void {
    const t: Promise<void> = p.then(
      () => undefined,
      (e: unknown) => {
        this.host.logger.error('mailbox: request handling failed', { address: this.address, error: String(e) });
      },
    );
    this.running.add(t);
    void t.finally(() => this.running.delete(t));
  }

  // ---------------------------------------------------------------- heartbeats and close

  /** Sends a heartbeat on every stream quiet for `heartbeatMs`; a stream whose client is gone is cancelled. */
  heartbeat(): void {
    const now = this.host.clock.monotonic();
    for (const s of this.streams.values()) {
      if (s.isCancelled || now - s.lastSent < this.host.options.heartbeatMs) continue;
      s.lastSent = now;
      void this.host.wire
        .sendReply(s.replyTo, replyFields({ kind: ReplyKind.hb, id: s.id }))
        .then((delivered) => {
          if (!delivered) s.cancel();
        })
        .catch(() => undefined);
    }
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.stopped = true;
    // 1. Stop reading: what is not read stays in the inbox for the next server.
    await this.reader?.close().catch((e: unknown) => this.host.logger.warn('mailbox: closing the inbox reader failed', { address: this.address, error: String(e) }));
    // 2. End open streams: their clients re-subscribe (ON_SHUTDOWN is retriable).
    for (const s of this.streams.values()) s.cancel(new StreamingError(ErrorCode.ON_SHUTDOWN, `${this.address} is shutting down`, { retriable: true, details: { address: this.address } }));
    // 3. Drain in-flight handlers, up to the deadline.
    const all = Promise.allSettled([...this.running]);
    let timer: { cancel(): void } | undefined;
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => (timer = this.host.clock.setTimeout(() => resolve(true), this.host.options.drainTimeoutMs))),
    ]);
    timer?.cancel();
    if (timedOut && this.running.size > 0) {
      this.abandoned = true;
      this.host.logger.warn('mailbox: close abandoned in-flight requests (left unacknowledged for the next server)', { address: this.address, inFlight: this.inFlight });
    }
    this.host.released(this.address);
  }
}
