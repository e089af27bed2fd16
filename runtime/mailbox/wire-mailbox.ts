/**
 * The Mailbox over any MailboxWire: the client side (correlation ids, deadlines, size limits, open
 * streams with credits and a heartbeat watchdog) and the servers of the addresses it serves
 * (./wire-server.ts). RedisMailbox and MemoryMailbox are this class over their wire.
 */
import { randomUUID } from 'node:crypto';
import { systemClock, type Clock, type TimerHandle } from '../clock';
import { ErrorCode, StreamingError, invalidArgument } from '../errors';
import { createLogger, type Logger } from '../logger';
import {
  decodeItem,
  decodeResult,
  encodeCommand,
  isStreamCommandType,
  type CallCommand,
  type CallCommandType,
  type CodecLimits,
  type ItemOf,
  type ResultOf,
  type StreamCommand,
  type StreamCommandType,
} from './commands';
import { ClientStream } from './client-stream';
import { RequestKind, ReplyKind, parseReply, requestFields, type ReplyEnvelope } from './envelope';
import {
  mailboxOptions,
  validateAddress,
  type HandlerTable,
  type Mailbox,
  type MailboxOptions,
  type MailboxServer,
  type MailboxStream,
  type RequestOptions,
  type ServeOptions,
  type StreamOptions,
} from './mailbox';
import { WireServer } from './wire-server';
import { entryBytes, type MailboxWire, type ReplyReader, type WireEntry, type WireFields } from './wire';

interface PendingCall {
  type: CallCommandType;
  address: string;
  resolve(value: unknown): void;
  reject(error: StreamingError): void;
  timer: TimerHandle;
}

interface PendingOpen {
  stream: ClientStream<unknown>;
  resolve(stream: ClientStream<unknown>): void;
  reject(error: StreamingError): void;
  timer: TimerHandle;
}

export class WireMailbox implements Mailbox {
  readonly clientId: string;
  readonly options: MailboxOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly codecLimits: CodecLimits;
  /** Prefix of this incarnation's request ids (a restarted client with the same id never matches an old reply). */
  private readonly incarnation: string;
  private seq = 0;
  private readonly calls = new Map<string, PendingCall>();
  private readonly opening = new Map<string, PendingOpen>();
  private readonly streams = new Map<string, ClientStream<unknown>>();
  private readonly servers = new Map<string, WireServer>();
  private replies: Promise<ReplyReader> | undefined;
  private ticker: TimerHandle | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly wire: MailboxWire,
    options: Partial<MailboxOptions> = {},
    logger?: Logger,
  ) {
    this.options = mailboxOptions(options);
    this.clock = options.clock ?? systemClock;
    this.clientId = this.options.clientId ?? randomUUID();
    this.logger = logger ?? createLogger(`mailbox.${wire.name}`);
    this.codecLimits = { maxMessageBytes: Math.max(this.options.maxRequestBytes, this.options.maxReplyBytes) };
    this.incarnation = `${this.clock.now().toString(36)}${Math.floor(this.clock.monotonic() * 1000).toString(36)}`;
  }

  // ---------------------------------------------------------------- client side

  /**
   * Runs `fn` once the clock is past `deadline` (epoch ms). Timers run on the event loop's own
   * millisecond clock, which can fire a timer while the wall clock still reads the deadline; a
   * server drops a request only once it is past it, so a client that gave up a moment early would
   * leave a request that a server still runs. The timer is re-armed until the deadline has passed,
   * for at most a second beyond the timeout (a wall clock stepped back would otherwise stretch it).
   */
  private afterDeadline(deadline: number, timeoutMs: number, fn: () => void): TimerHandle {
    let current: TimerHandle;
    const giveUpAt = this.clock.monotonic() + timeoutMs + 1000;
    const arm = (): void => {
      current = this.clock.setTimeout(
        () => (this.clock.now() > deadline || this.clock.monotonic() >= giveUpAt ? fn() : arm()),
        Math.max(1, Math.min(deadline - this.clock.now() + 1, giveUpAt - this.clock.monotonic())),
      );
    };
    arm();
    return { cancel: () => current.cancel() };
  }

  async request<C extends CallCommand>(address: string, command: C, opts: RequestOptions): Promise<ResultOf<C['type']>> {
    this.checkOpen();
    validateAddress(address);
    const timeoutMs = checkTimeout(opts?.timeoutMs);
    const type = command?.type as CallCommandType;
    if (typeof type !== 'string' || isStreamCommandType(type)) throw invalidArgument(`${String(type)} is not a request/reply command${isStreamCommandType(type) ? ' (use openStream)' : ''}`, { field: 'type' });
    const deadline = this.clock.now() + timeoutMs;
    const id = this.nextId();
    const fields = requestFields({ kind: RequestKind.call, id, replyTo: this.clientId, deadline, command: encodeCommand(command, this.codecLimits) });
    this.checkRequestSize(fields);
    await this.ensureReplies();
    this.checkOpen(); // close() may have run meanwhile
    return new Promise<ResultOf<C['type']>>((resolve, reject) => {
      const timer = this.afterDeadline(deadline, timeoutMs, () => {
        if (this.calls.delete(id)) reject(timeoutError(`${type} to ${address}`, timeoutMs, address));
      });
      this.calls.set(id, { type, address, resolve: resolve as (v: unknown) => void, reject, timer });
      this.wire.sendRequest(address, fields).catch((e: unknown) => {
        if (!this.calls.delete(id)) return;
        timer.cancel();
        reject(sendError(`${type} to ${address}`, address, e));
      });
    });
  }

  async openStream<C extends StreamCommand>(address: string, command: C, opts: StreamOptions): Promise<MailboxStream<ItemOf<C['type']>>> {
    this.checkOpen();
    validateAddress(address);
    const timeoutMs = checkTimeout(opts?.timeoutMs);
    const type = command?.type as StreamCommandType;
    if (typeof type !== 'string' || !isStreamCommandType(type)) throw invalidArgument(`${String(type)} is not a streaming command (use request)`, { field: 'type' });
    const credits = opts.credits ?? this.options.defaultCredits;
    if (!Number.isSafeInteger(credits) || credits < 1 || credits > 1_000_000) throw invalidArgument('credits must be an integer in [1, 1000000]', { field: 'credits', value: credits });
    const deadline = this.clock.now() + timeoutMs;
    const id = this.nextId();
    const fields = requestFields({ kind: RequestKind.open, id, replyTo: this.clientId, deadline, command: encodeCommand(command, this.codecLimits), credits });
    this.checkRequestSize(fields);
    await this.ensureReplies();
    this.checkOpen(); // close() may have run meanwhile
    const stream = new ClientStream<unknown>(id, type, address, credits, {
      control: (kind, sid, addr, n) => this.control(kind, sid, addr, n),
      forget: (sid) => this.streams.delete(sid),
      monotonic: () => this.clock.monotonic(),
    });
    const opened = new Promise<ClientStream<unknown>>((resolve, reject) => {
      const timer = this.afterDeadline(deadline, timeoutMs, () => {
        if (!this.opening.delete(id)) return;
        this.control('cancel', id, address); // the server may open it later: end it there
        reject(timeoutError(`${type} to ${address}`, timeoutMs, address));
      });
      this.opening.set(id, { stream, resolve, reject, timer });
      this.wire.sendRequest(address, fields).catch((e: unknown) => {
        if (!this.opening.delete(id)) return;
        timer.cancel();
        reject(sendError(`${type} to ${address}`, address, e));
      });
    });
    this.startTicker();
    return (await opened) as unknown as MailboxStream<ItemOf<C['type']>>;
  }

  private nextId(): string {
    return `${this.incarnation}.${(++this.seq).toString(36)}`;
  }

  private checkRequestSize(fields: WireFields): void {
    const size = entryBytes(fields);
    const limit = this.options.maxRequestBytes;
    if (size > limit) throw invalidArgument(`request of ${size} bytes exceeds the limit of ${limit} bytes`, { field: 'request', size, limit });
  }

  private checkOpen(): void {
    if (this.closing) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'mailbox closed', { retriable: false });
  }

  /** Credit grants and cancels: fire and forget (a lost one ends in a heartbeat timeout, never a hang). */
  private control(kind: 'credit' | 'cancel', id: string, address: string, credits?: number): void {
    const fields = requestFields({
      kind: kind === 'credit' ? RequestKind.credit : RequestKind.cancel,
      id,
      replyTo: this.clientId,
      deadline: this.clock.now() + 3 * this.options.heartbeatMs,
      ...(credits !== undefined ? { credits } : {}),
    });
    this.wire.sendRequest(address, fields).catch((e: unknown) => this.logger.debug('mailbox: control message not sent', { kind, id, address, error: String(e) }));
  }

  private ensureReplies(): Promise<ReplyReader> {
    if (!this.replies) {
      const p = this.wire.openReplies(this.clientId, (entries) => this.onReplies(entries));
      this.replies = p;
      p.catch(() => {
        if (this.replies === p) this.replies = undefined; // the next request tries again
      });
    }
    return this.replies.catch((e: unknown) => {
      throw new StreamingError(ErrorCode.INNER, `mailbox: cannot open the reply stream: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    });
  }

  private onReplies(entries: WireEntry[]): void {
    for (const entry of entries) {
      if (!entry.fields) continue;
      let reply: ReplyEnvelope | undefined;
      try {
        reply = parseReply(entry.fields);
      } catch (e) {
        this.logger.warn('mailbox: malformed reply dropped', { entry: entry.id, error: String(e) });
        continue;
      }
      if (reply) this.route(reply);
    }
  }

  private route(reply: ReplyEnvelope): void {
    const call = this.calls.get(reply.id);
    if (call) {
      if (reply.kind !== ReplyKind.ok && reply.kind !== ReplyKind.err) return;
      this.calls.delete(reply.id);
      call.timer.cancel();
      if (reply.kind === ReplyKind.err) return call.reject(reply.error ?? malformed('error reply without an error'));
      try {
        call.resolve(decodeResult(call.type, reply.payload ?? { json: null }));
      } catch (e) {
        call.reject(malformed(`undecodable ${call.type} result: ${e instanceof Error ? e.message : String(e)}`));
      }
      return;
    }
    const open = this.opening.get(reply.id);
    if (open) {
      if (reply.kind === ReplyKind.open) {
        this.opening.delete(reply.id);
        open.timer.cancel();
        open.stream.touch();
        this.streams.set(reply.id, open.stream);
        open.resolve(open.stream);
      } else if (reply.kind === ReplyKind.err) {
        this.opening.delete(reply.id);
        open.timer.cancel();
        open.reject(reply.error ?? malformed('error reply without an error'));
      }
      return;
    }
    const stream = this.streams.get(reply.id);
    if (!stream) return; // late reply of a call that timed out, or of a closed stream
    switch (reply.kind) {
      case ReplyKind.item: {
        let item: unknown;
        try {
          item = decodeItem(stream.type, reply.payload ?? { json: null });
        } catch (e) {
          stream.fail(malformed(`undecodable stream item: ${e instanceof Error ? e.message : String(e)}`), true);
          return;
        }
        stream.push(item);
        return;
      }
      case ReplyKind.end:
        return stream.end();
      case ReplyKind.err:
        return stream.fail(reply.error ?? malformed('error item without an error'));
      case ReplyKind.hb:
      case ReplyKind.open:
        return stream.touch();
      default:
        return;
    }
  }

  /** One timer per mailbox: heartbeats of served streams, silence checks of open client streams. */
  private startTicker(): void {
    if (this.ticker || this.closing) return;
    const every = Math.max(1, Math.floor(this.options.heartbeatMs / 2));
    this.ticker = this.clock.setInterval(() => this.tick(), every);
  }

  private tick(): void {
    for (const s of this.servers.values()) s.heartbeat();
    const silentFor = 3 * this.options.heartbeatMs;
    const now = this.clock.monotonic();
    for (const s of [...this.streams.values()]) {
      if (now - s.lastHeard > silentFor) {
        s.fail(
          new StreamingError(ErrorCode.UNKNOWN, `stream ${s.id} from ${s.address}: nothing heard for ${Math.round(now - s.lastHeard)} ms (the server is gone)`, {
            retriable: true,
            details: { address: s.address, silentMs: Math.round(now - s.lastHeard), deadlineExceeded: true },
          }),
          true,
        );
      }
    }
  }

  // ---------------------------------------------------------------- server side

  async serve(address: string, handlers: HandlerTable, opts: ServeOptions = {}): Promise<MailboxServer> {
    this.checkOpen();
    validateAddress(address);
    if (this.servers.has(address)) throw invalidArgument(`this mailbox already serves ${address}`, { field: 'address', address });
    const consumer = opts.consumer ?? 'server';
    if (!/^[A-Za-z0-9_.-]{1,200}$/.test(consumer)) throw invalidArgument('consumer must be 1-200 of A-Z a-z 0-9 _ . -', { field: 'consumer', consumer });
    const maxInFlight = opts.maxInFlight ?? this.options.maxInFlight;
    const maxStreams = opts.maxStreams ?? this.options.maxStreams;
    if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) throw invalidArgument('maxInFlight must be a positive integer', { field: 'maxInFlight' });
    if (!Number.isSafeInteger(maxStreams) || maxStreams < 1) throw invalidArgument('maxStreams must be a positive integer', { field: 'maxStreams' });
    const server = new WireServer(address, handlers, { consumer, maxInFlight, maxStreams }, {
      wire: this.wire,
      options: this.options,
      clock: this.clock,
      logger: this.logger,
      codecLimits: this.codecLimits,
      released: (a) => {
        if (this.servers.get(a) === server) this.servers.delete(a);
      },
    });
    this.servers.set(address, server);
    try {
      await server.start();
    } catch (e) {
      this.servers.delete(address);
      throw e;
    }
    this.startTicker();
    return server;
  }

  // ---------------------------------------------------------------- close

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    // 1. Servers: stop reading, end streams, drain handlers (each bounded by drainTimeoutMs).
    await Promise.all([...this.servers.values()].map((s) => s.close()));
    // 2. Client side: nobody will answer now.
    const shutdown = (): StreamingError => new StreamingError(ErrorCode.ON_SHUTDOWN, 'mailbox closed', { retriable: true });
    for (const [id, c] of this.calls) {
      this.calls.delete(id);
      c.timer.cancel();
      c.reject(shutdown());
    }
    for (const [id, o] of this.opening) {
      this.opening.delete(id);
      o.timer.cancel();
      o.reject(shutdown());
    }
    for (const s of [...this.streams.values()]) s.fail(shutdown(), true);
    this.ticker?.cancel();
    this.ticker = undefined;
    // 3. Release: the reply stream is no longer refreshed (it expires), then the connections.
    if (this.replies) {
      const reader = await this.replies.catch(() => undefined);
      await reader?.close().catch((e: unknown) => this.logger.warn('mailbox close: reply reader', { error: String(e) }));
    }
    await this.wire.close().catch((e: unknown) => this.logger.warn('mailbox close: wire', { error: String(e) }));
  }
}

function checkTimeout(t: unknown): number {
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw invalidArgument('timeoutMs must be a positive number', { field: 'timeoutMs', value: t });
  return Math.ceil(t);
}

/** No answer in time: like runtime/ask.ts, the outcome is unknown (retriable). */
function timeoutError(what: string, timeoutMs: number, address: string): StreamingError {
  return new StreamingError(ErrorCode.UNKNOWN, `${what}: no answer within ${timeoutMs} ms (the outcome is unknown)`, {
    retriable: true,
    details: { timeoutMs, deadlineExceeded: true, address },
  });
}

function sendError(what: string, address: string, e: unknown): StreamingError {
  return new StreamingError(ErrorCode.UNKNOWN, `${what}: sending failed (the outcome is unknown): ${e instanceof Error ? e.message : String(e)}`, {
    cause: e,
    retriable: true,
    details: { address },
  });
}

function malformed(message: string): StreamingError {
  return new StreamingError(ErrorCode.INNER, `mailbox: ${message}`, { retriable: false });
}
