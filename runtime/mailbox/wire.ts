/**
 * What a mailbox implementation provides: moving stream entries (field → Buffer maps) between
 * inboxes and reply streams. Everything above it — envelopes, correlation, deadlines, size limits,
 * validation, credits, heartbeats, draining — lives once in ./wire-mailbox.ts, so the Redis and the
 * in-memory mailbox differ only here and cannot drift apart in semantics.
 */

/** One stream entry's fields. Values are bytes (JSON text or binary), never numbers. */
export type WireFields = Map<string, Buffer>;

export interface WireEntry {
  /** Stream entry id (Redis `ms-seq`). */
  readonly id: string;
  /** Undefined when the entry was trimmed away while it was pending (it is acknowledged and dropped). */
  readonly fields: WireFields | undefined;
}

/** The server side's view of one inbox reader. */
export interface InboxConsumer {
  /** How many more entries the server takes now (0 pauses reading until `InboxReader.wake()`). */
  capacity(): number;
  /** Entries in stream order: first this consumer's unacknowledged ones (after a restart), then new ones. */
  deliver(entries: WireEntry[]): void;
}

export interface InboxReader {
  /** Acknowledges entries (XACK): they are never delivered again. */
  ack(ids: readonly string[]): Promise<void>;
  /** Capacity grew: read again. */
  wake(): void;
  /** Stops reading (a blocked read is interrupted); unacknowledged entries stay pending for the next reader. Idempotent. */
  close(): Promise<void>;
}

export interface ReplyReader {
  /** Stops reading and keeping the reply stream alive; the stream then expires. Idempotent. */
  close(): Promise<void>;
}

export interface MailboxWire {
  /** "redis" or "memory". */
  readonly name: string;
  /** Appends a request to an address's inbox (created when missing), trimmed to about `inboxMaxLen` entries. */
  sendRequest(address: string, fields: WireFields): Promise<void>;
  /**
   * Appends a reply to a client's reply stream, trimmed to about `replyMaxLen` entries. Never creates
   * the stream: resolves false when it does not exist (the client is gone or its stream expired).
   */
  sendReply(clientId: string, fields: WireFields): Promise<boolean>;
  /** Creates this client's reply stream, keeps it alive (TTL refresh) and delivers its new entries in order. */
  openReplies(clientId: string, deliver: (entries: WireEntry[]) => void): Promise<ReplyReader>;
  /** Reads an address's inbox in the consumer group as `consumer` (creating inbox and group when missing). */
  openInbox(address: string, consumer: string, target: InboxConsumer): Promise<InboxReader>;
  /** Releases connections. Called last, after every reader is closed. Idempotent. */
  close(): Promise<void>;
}

/** Bytes of an entry as the limits count them: field names plus values. */
export function entryBytes(fields: WireFields): number {
  let n = 0;
  for (const [k, v] of fields) n += Buffer.byteLength(k) + v.length;
  return n;
}
