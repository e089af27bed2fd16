/**
 * The command mailbox: how clients, the coordinator and streaming nodes talk across processes.
 *
 * A request goes to an address's inbox (one per node, one for the coordinator) as
 * `{ id, replyTo, deadline, command }`; its reply goes to the sender's own reply stream, matched by
 * `id`. A server drops requests already past their deadline unread (the client has failed with a
 * timeout by then). A streaming command (subscribe) opens a stream of reply items under one id with
 * credit-based flow control: the client grants credits, the server sends at most that many items
 * ahead, the client may cancel, and the server ends the stream with an `end` or an error item.
 *
 * Implementations: ./redis/redis-mailbox.ts (Redis Streams) and ./memory/memory-mailbox.ts (one
 * process); both run test/conformance/mailbox.suite.ts. See README.md for the wire format.
 */
import { invalidArgument } from '../errors';
import type { Clock } from '../clock';
import type { CallCommand, CallCommandType, CommandOf, ItemOf, ResultOf, StreamCommand, StreamCommandType } from './commands';

export interface RequestOptions {
  /** The client gives up after this long (ms) with a retriable UNKNOWN (deadlineExceeded); the deadline travels with the request. */
  timeoutMs: number;
}

export interface StreamOptions extends RequestOptions {
  /** `timeoutMs` bounds the open only. Items the server may send ahead of the consumer. Default `defaultCredits`. */
  credits?: number;
}

/** A stream of reply items, in order. `close()` cancels it at the server. */
export interface MailboxStream<T> extends AsyncIterableIterator<T> {
  close(): void;
}

/** What a handler knows about the request it serves. */
export interface RequestContext {
  readonly address: string;
  readonly requestId: string;
  readonly replyTo: string;
  /** Epoch ms (the client's clock) after which nobody waits for the answer. */
  readonly deadline: number;
  /** Milliseconds left until the deadline, at least 1 (for the timeouts of the calls the handler makes). */
  remainingMs(): number;
}

export type CallHandler<T extends CallCommandType> = (command: CommandOf<T>, ctx: RequestContext) => Promise<ResultOf<T>>;
export type StreamHandler<T extends StreamCommandType> = (command: CommandOf<T>, ctx: RequestContext) => Promise<AsyncIterator<ItemOf<T>>>;

/**
 * The commands one address serves: one handler per command type. A handler returns the result,
 * throws a StreamingError (it crosses to the client with code, retriable and details), or — for a
 * streaming command — returns an async iterator whose items the server sends as credits allow
 * (its `return()` is called when the client cancels or goes away).
 */
export type HandlerTable = { [T in CallCommandType]?: CallHandler<T> } & { [T in StreamCommandType]?: StreamHandler<T> };

export interface ServeOptions {
  /** Consumer name in the inbox's consumer group; a restarted server with the same name re-reads what it had read but not acknowledged. Default "server". */
  consumer?: string;
  /** Most requests handled at once; reading pauses beyond (requests wait in the inbox, not in memory). Default `MailboxOptions.maxInFlight`. */
  maxInFlight?: number;
  /** Most open streams; more are refused with RESOURCE_EXHAUSTED. Default `MailboxOptions.maxStreams`. */
  maxStreams?: number;
}

export interface ServerStats {
  /** Entries read from the inbox (requests and control messages). */
  received: number;
  /** Handler runs started. */
  handled: number;
  /** Replies with a result (including stream opens). */
  replied: number;
  /** Error replies (handler errors, invalid requests). */
  failed: number;
  /** Requests dropped unread because their deadline had passed. */
  expired: number;
  /** Entries refused as malformed (answered when they named a reply-to, dropped otherwise). */
  invalid: number;
  /** Handlers running now. */
  inFlight: number;
  /** Streams open now. */
  streams: number;
  /** Stream items sent. */
  items: number;
}

export interface MailboxServer {
  readonly address: string;
  stats(): ServerStats;
  /**
   * Ordered and idempotent: stop reading the inbox, end open streams (ON_SHUTDOWN, retriable), wait for
   * in-flight handlers up to `drainTimeoutMs` (those still running are abandoned unacknowledged: a
   * restarted server runs them again if their deadline allows), then release the reader.
   */
  close(): Promise<void>;
}

export interface Mailbox {
  /** This mailbox's client id: the name of its reply stream. */
  readonly clientId: string;
  /** Sends a request/reply command and waits for its result (or its error, thrown as a StreamingError). */
  request<C extends CallCommand>(address: string, command: C, opts: RequestOptions): Promise<ResultOf<C['type']>>;
  /** Opens a streaming command; resolves once the server accepted it (or rejects with its error). */
  openStream<C extends StreamCommand>(address: string, command: C, opts: StreamOptions): Promise<MailboxStream<ItemOf<C['type']>>>;
  /** Serves an address: reads its inbox and dispatches each command to the handler of its type. */
  serve(address: string, handlers: HandlerTable, opts?: ServeOptions): Promise<MailboxServer>;
  /** Ordered and idempotent: closes every server, fails pending requests and open streams with ON_SHUTDOWN, releases connections. */
  close(): Promise<void>;
}

/** Options every mailbox implementation shares. Each field has its default in DEFAULT_MAILBOX_OPTIONS. */
export interface MailboxOptions {
  /** Largest request entry (all fields) in bytes: a larger one is refused (INVALID_ARGUMENT, field "request") by the client and by the server. Default 4 MiB + 64 KiB. */
  maxRequestBytes: number;
  /** Largest reply entry in bytes: a larger result or item becomes a RESOURCE_EXHAUSTED error reply. Default 4 MiB + 64 KiB. */
  maxReplyBytes: number;
  /** Length bound of an inbox (XADD MAXLEN ~). Requests beyond it are trimmed oldest first (their senders time out). Default 10000. */
  inboxMaxLen: number;
  /** Length bound of a reply stream (XADD MAXLEN ~). Default 10000. */
  replyMaxLen: number;
  /** A client's reply stream expires this long after its owner stopped refreshing it (refreshed every third of it). Default 60000 ms. */
  replyTtlMs: number;
  /** Longest a blocking read waits before it reads again (ms). Default 5000. */
  blockMs: number;
  /** Entries taken per read. Default 128. */
  readCount: number;
  /** Most requests a server handles at once (per address). Default 256. */
  maxInFlight: number;
  /** Most streams a server keeps open (per address). Default 1024. */
  maxStreams: number;
  /** Credits of a stream when the caller names none. Default 64. */
  defaultCredits: number;
  /** A server sends a heartbeat on a stream that sent nothing for this long; a client fails a stream silent for 3× it (retriable). Default 5000 ms. */
  heartbeatMs: number;
  /** How long `close()` waits for in-flight handlers (ms). Default 5000. */
  drainTimeoutMs: number;
  /** Time source for deadlines, timers and reply-stream expiry. Default systemClock. */
  clock?: Clock;
  /** This mailbox's client id (its reply stream's name). Default a random UUID. */
  clientId?: string;
}

export const DEFAULT_MAILBOX_OPTIONS: Readonly<Omit<MailboxOptions, 'clock' | 'clientId'>> = {
  maxRequestBytes: 4 * 1024 * 1024 + 64 * 1024,
  maxReplyBytes: 4 * 1024 * 1024 + 64 * 1024,
  inboxMaxLen: 10_000,
  replyMaxLen: 10_000,
  replyTtlMs: 60_000,
  blockMs: 5_000,
  readCount: 128,
  maxInFlight: 256,
  maxStreams: 1024,
  defaultCredits: 64,
  heartbeatMs: 5_000,
  drainTimeoutMs: 5_000,
};

/** Validates options once at the boundary; a bad value names its field. */
export function mailboxOptions(partial: Partial<MailboxOptions> = {}): MailboxOptions {
  const o: MailboxOptions = { ...DEFAULT_MAILBOX_OPTIONS, ...stripUndefined(partial) };
  const positive: (keyof typeof DEFAULT_MAILBOX_OPTIONS)[] = [
    'maxRequestBytes',
    'maxReplyBytes',
    'inboxMaxLen',
    'replyMaxLen',
    'replyTtlMs',
    'blockMs',
    'readCount',
    'maxInFlight',
    'maxStreams',
    'defaultCredits',
    'heartbeatMs',
  ];
  for (const k of positive) {
    const v = o[k];
    if (!Number.isSafeInteger(v) || v < 1) throw invalidArgument(`mailbox option ${k} must be a positive integer`, { field: k, value: v });
  }
  if (!Number.isSafeInteger(o.drainTimeoutMs) || o.drainTimeoutMs < 0) throw invalidArgument('mailbox option drainTimeoutMs must be a non-negative integer', { field: 'drainTimeoutMs', value: o.drainTimeoutMs });
  if (o.clientId !== undefined) validateClientId(o.clientId);
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,200}$/;

/** An address names an inbox: 1–200 of `A-Z a-z 0-9 _ . -` (no `:`, so inbox keys never collide with reply keys). */
export function validateAddress(address: string): void {
  if (typeof address !== 'string' || !NAME_RE.test(address)) {
    throw invalidArgument(`invalid mailbox address ${JSON.stringify(address)}: expected 1-200 of A-Z a-z 0-9 _ . -`, { field: 'address', address });
  }
}

/** A client id names a reply stream; same alphabet as addresses. */
export function validateClientId(clientId: string): void {
  if (typeof clientId !== 'string' || !NAME_RE.test(clientId)) {
    throw invalidArgument(`invalid mailbox client id ${JSON.stringify(clientId)}: expected 1-200 of A-Z a-z 0-9 _ . -`, { field: 'clientId', clientId });
  }
}
