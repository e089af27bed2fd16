/**
 * The mailbox wire on Redis Streams (ioredis).
 *
 * Connections: one for commands (XADD, XACK, PEXPIRE, XGROUP, DEL), shared by the client side and
 * every served address; one dedicated connection per blocking reader — the client's reply stream
 * (XREAD BLOCK) and each served inbox (XREADGROUP BLOCK) — because a blocked connection can carry
 * nothing else. Closing a reader disconnects its connection, which also interrupts a blocked read;
 * what Redis had handed to a reader that never saw it stays in the group's pending list.
 *
 * Inboxes: XADD MAXLEN ~ inboxMaxLen; consumer group MAILBOX_GROUP created from id 0 (requests sent
 * before the first server started are read too). A reader first re-reads its own pending entries
 * (`XREADGROUP … 0`: read before a crash, never acknowledged), then new ones (`>`).
 * Reply streams: created by their client with a `hello` entry and PEXPIRE replyTtlMs in one MULTI,
 * refreshed every third of the TTL; servers append with NOMKSTREAM, so a reply to a dead client
 * (whose stream expired) is dropped instead of creating a stream nobody reads.
 *
 * Redis going away (a restart, a dropped connection) — every connection reconnects on its own:
 * - The command connection re-sends, after the reconnect and in order, what was in flight (ioredis'
 *   autoResendUnfulfilledCommands), so no request or reply is lost — but one Redis had applied before
 *   the drop is then written twice. Every entry this wire writes carries its producer id and sequence
 *   number (field `q`, stripped before delivery); readers drop the second copy.
 * - The blocking readers do not re-send (a re-sent XREADGROUP would hide the entries the lost one had
 *   claimed): a read in flight fails with the drop (ConnectionLoss, runtime/redis/connection-loss.ts —
 *   ioredis 6.0.0 would leave it pending for ever) and is issued again once Redis is back. An inbox
 *   reader then first re-reads its pending entries — skipping those its server is still handling and
 *   re-acknowledging those whose XACK failed — so nothing it was handed is lost or run twice.
 */
import { randomBytes } from 'node:crypto';
import { connectOrExplain } from '../../../storage/redis/connect';
import type { Redis, RedisOptions } from 'ioredis';
import { Redis as RedisClient } from 'ioredis';
import type { Clock, TimerHandle } from '../../clock';
import type { Logger } from '../../logger';
import { ConnectionLoss } from '../../redis/connection-loss';
import { ReplyKind, replyFields } from '../envelope';
import type { MailboxOptions } from '../mailbox';
import type { InboxConsumer, InboxReader, MailboxWire, ReplyReader, WireEntry, WireFields } from '../wire';
import { MAILBOX_GROUP, type MailboxKeys } from './keys';

export interface RedisWireDeps {
  command: Redis;
  /** Options of every connection this wire opens (the command connection's, plus a name). */
  connection: RedisOptions;
  keys: MailboxKeys;
  options: MailboxOptions;
  clock: Clock;
  logger: Logger;
  connectTimeoutMs: number;
}

const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 2000;
/** The field with the producer id and sequence number of an entry (`<producer>.<seq base 36>`). */
const SEQ_FIELD = 'q';
/** Producers a reply reader remembers the last sequence number of. */
const MAX_PRODUCERS = 10_000;
/** Sequence keys of recent requests an inbox reader remembers (a re-sent copy arrives right after a reconnect). */
const MAX_SEEN_REQUESTS = 65_536;

export class RedisWire implements MailboxWire {
  readonly name = 'redis';
  private readonly readers = new Set<{ close(): Promise<void> }>();
  private closing: Promise<void> | undefined;
  /** Tags every entry this wire writes, with `seq`: a re-sent copy is recognized by its readers. */
  private readonly producer = randomBytes(8).toString('hex');
  private seq = 0;

  constructor(private readonly deps: RedisWireDeps) {
    const { logger } = deps;
    new ConnectionLoss(deps.command, {
      onDrop: () => {
        if (!this.closing) logger.warn('mailbox: command connection to Redis lost; reconnecting (commands in flight are re-sent once it is back)');
      },
      onRestore: (downMs) => {
        if (!this.closing) logger.warn('mailbox: command connection to Redis re-established', { downMs });
      },
    });
  }

  private get cmd(): Redis {
    return this.deps.command;
  }

  async sendRequest(address: string, fields: WireFields): Promise<void> {
    await this.cmd.xaddBuffer(this.deps.keys.inbox(address), 'MAXLEN', '~', this.deps.options.inboxMaxLen, '*', ...this.tagged(fields));
  }

  async sendReply(clientId: string, fields: WireFields): Promise<boolean> {
    const id = await this.cmd.xaddBuffer(this.deps.keys.replies(clientId), 'NOMKSTREAM', 'MAXLEN', '~', this.deps.options.replyMaxLen, '*', ...this.tagged(fields));
    return id !== null && id !== undefined;
  }

  /** The entry's fields plus its sequence tag. The tag is taken in send order, which is the order on the connection. */
  private tagged(fields: WireFields): (string | Buffer)[] {
    const out = flatten(fields);
    out.push(SEQ_FIELD, `${this.producer}.${(++this.seq).toString(36)}`);
    return out;
  }

  async openReplies(clientId: string, deliver: (entries: WireEntry[]) => void): Promise<ReplyReader> {
    const { keys, options, clock, logger } = this.deps;
    const key = keys.replies(clientId);
    const hello = flatten(replyFields({ kind: ReplyKind.hello, id: clientId }));
    const create = async (): Promise<string> => {
      const res = await this.cmd.multi().xadd(key, 'MAXLEN', '~', String(options.replyMaxLen), '*', ...hello).pexpire(key, options.replyTtlMs).exec();
      const [err, id] = res?.[0] ?? [new Error('MULTI aborted'), null];
      if (err) throw err;
      return String(id);
    };
    let last = await create();
    const conn = await this.connect(`reply`);
    let stopped = false;
    const loss = new ConnectionLoss(conn, {
      onDrop: () => {
        if (!stopped) logger.warn('mailbox: reply reader lost its Redis connection; reconnecting', { key });
      },
      onRestore: (downMs) => {
        if (!stopped) logger.warn('mailbox: reply reader reconnected to Redis; reading on', { key, downMs });
      },
    });
    /** Producer → the highest sequence number delivered from it: a lower or equal one is a re-sent copy. */
    const highest = new Map<string, number>();
    const fresh = (entries: WireEntry[]): WireEntry[] =>
      entries.filter((e) => {
        const tag = takeTag(e);
        if (tag === undefined) return true;
        const seen = highest.get(tag.producer);
        if (seen !== undefined && tag.seq <= seen) {
          logger.debug('mailbox: dropped a reply written twice (re-sent after a reconnect)', { key, entry: e.id });
          return false;
        }
        highest.delete(tag.producer); // most recently heard from last: the oldest producer is forgotten first
        highest.set(tag.producer, tag.seq);
        if (highest.size > MAX_PRODUCERS) highest.delete(highest.keys().next().value!);
        return true;
      });
    const refresh: TimerHandle = clock.setInterval(() => {
      if (stopped) return;
      this.cmd
        .pexpire(key, options.replyTtlMs)
        .then(async (n) => {
          if (n === 0 && !stopped) await create(); // expired while we could not refresh: servers drop replies meanwhile
        })
        .catch((e: unknown) => logger.debug('mailbox: reply stream refresh failed', { key, error: String(e) }));
    }, Math.max(1, Math.floor(options.replyTtlMs / 3)));
    const loop = (async () => {
      let backoff = BACKOFF_MIN_MS;
      while (!stopped) {
        try {
          const reply = await loss.track(() => conn.callBuffer('XREAD', 'COUNT', options.readCount, 'BLOCK', options.blockMs, 'STREAMS', key, last));
          backoff = BACKOFF_MIN_MS;
          const entries = parseStreamsReply(reply);
          if (entries.length === 0) continue;
          last = entries[entries.length - 1]!.id;
          const delivered = fresh(entries);
          if (delivered.length > 0) deliver(delivered);
        } catch (e) {
          if (stopped) break;
          if (loss.isLost(e)) continue; // read again (from `last`) once the connection is back
          logger.warn('mailbox: reply read failed; retrying', { key, error: String(e) });
          await clock.sleep(backoff);
          backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
        }
      }
    })();
    const reader = {
      close: async (): Promise<void> => {
        if (stopped) return;
        stopped = true;
        refresh.cancel();
        conn.disconnect();
        await loop;
        this.readers.delete(reader);
        // A clean close removes the stream at once (a crash leaves it to expire).
        await this.cmd.del(key).catch(() => undefined);
      },
    };
    this.readers.add(reader);
    return reader;
  }

  async openInbox(address: string, consumer: string, target: InboxConsumer): Promise<InboxReader> {
    const { keys, options, clock, logger } = this.deps;
    const key = keys.inbox(address);
    await this.ensureGroup(key);
    const conn = await this.connect(`inbox-${address}`);
    let stopped = false;
    const loss = new ConnectionLoss(conn, {
      onDrop: () => {
        if (!stopped) logger.warn('mailbox: inbox reader lost its Redis connection; reconnecting', { address });
      },
      onRestore: (downMs) => {
        if (!stopped) logger.warn('mailbox: inbox reader reconnected to Redis; re-reading its pending requests', { address, downMs });
      },
    });
    /** Entries handed to the server and not acknowledged yet: a re-read of the pending ones skips them. */
    const delivered = new Set<string>();
    /** Entries the server finished whose XACK failed: acknowledged again when re-read. */
    const unacked = new Set<string>();
    /** Sequence tag → entry id of recent requests: another entry with a known tag is a re-sent copy. */
    const seen = new Map<string, string>();
    const ack = async (ids: readonly string[]): Promise<void> => {
      if (ids.length === 0) return;
      try {
        await this.cmd.xack(key, MAILBOX_GROUP, ...ids);
      } catch (e) {
        for (const id of ids) {
          delivered.delete(id);
          unacked.add(id);
        }
        throw e;
      }
      for (const id of ids) {
        delivered.delete(id);
        unacked.delete(id);
      }
    };
    /** What of a read is new to the server; acknowledges copies and entries it already finished. */
    const fresh = (entries: WireEntry[]): WireEntry[] => {
      const out: WireEntry[] = [];
      const again: string[] = [];
      for (const e of entries) {
        if (unacked.has(e.id)) {
          again.push(e.id);
          continue;
        }
        if (delivered.has(e.id)) continue; // still being handled
        const tag = e.fields?.get(SEQ_FIELD)?.toString('latin1');
        e.fields?.delete(SEQ_FIELD);
        if (tag !== undefined) {
          const first = seen.get(tag);
          if (first !== undefined && first !== e.id) {
            logger.debug('mailbox: dropped a request written twice (re-sent after a reconnect)', { address, entry: e.id, first });
            again.push(e.id);
            continue;
          }
          seen.set(tag, e.id);
          if (seen.size > MAX_SEEN_REQUESTS) seen.delete(seen.keys().next().value!);
        }
        delivered.add(e.id);
        out.push(e);
      }
      if (again.length > 0) ack(again).catch((e: unknown) => logger.warn('mailbox: ack failed', { address, entries: again, error: String(e) }));
      return out;
    };
    let wake: (() => void) | undefined;
    const poke = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const loop = (async () => {
      let cursor: string | undefined = '0'; // pending first; undefined = new entries
      let backoff = BACKOFF_MIN_MS;
      while (!stopped) {
        const n = target.capacity();
        if (n <= 0) {
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        const count = Math.min(n, options.readCount);
        try {
          const from = cursor;
          const reply = await loss.track(() =>
            from !== undefined
              ? conn.callBuffer('XREADGROUP', 'GROUP', MAILBOX_GROUP, consumer, 'COUNT', count, 'STREAMS', key, from)
              : conn.callBuffer('XREADGROUP', 'GROUP', MAILBOX_GROUP, consumer, 'COUNT', count, 'BLOCK', options.blockMs, 'STREAMS', key, '>'),
          );
          backoff = BACKOFF_MIN_MS;
          const entries = parseStreamsReply(reply);
          if (cursor !== undefined) {
            if (entries.length === 0) cursor = undefined;
            else cursor = entries[entries.length - 1]!.id;
          }
          const news = fresh(entries);
          if (news.length > 0 && !stopped) target.deliver(news);
        } catch (e) {
          if (stopped) break;
          // A failed read may have claimed entries (Redis applied it, the reply was lost): they are this
          // consumer's pending ones now, so read those first again.
          cursor = '0';
          if (loss.isLost(e)) continue; // issued again once the connection is back
          if (String(e).includes('NOGROUP')) {
            await this.ensureGroup(key).catch(() => undefined);
            continue;
          }
          logger.warn('mailbox: inbox read failed; retrying', { key, error: String(e) });
          await clock.sleep(backoff);
          backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
        }
      }
    })();
    const reader = {
      ack,
      wake: poke,
      close: async (): Promise<void> => {
        if (stopped) return;
        stopped = true;
        poke();
        conn.disconnect();
        await loop;
        this.readers.delete(reader);
      },
    };
    this.readers.add(reader);
    return reader;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.readers].map((r) => r.close().catch(() => undefined)));
      await this.cmd.quit().catch((e: unknown) => {
        this.deps.logger.warn('mailbox close: quit failed', { error: String(e) });
        this.cmd.disconnect();
      });
    })();
    return this.closing;
  }

  private async ensureGroup(key: string): Promise<void> {
    try {
      await this.cmd.xgroup('CREATE', key, MAILBOX_GROUP, '0', 'MKSTREAM');
    } catch (e) {
      if (!String(e).includes('BUSYGROUP')) throw e;
    }
  }

  /** A dedicated connection for one blocking reader. */
  private async connect(role: string): Promise<Redis> {
    const base = this.deps.connection;
    const conn = new RedisClient({
      ...base,
      connectionName: `${base.connectionName ?? 'walstream-mailbox'}-${role}`.replace(/[^A-Za-z0-9_.-]/g, '_'),
      lazyConnect: true,
      connectTimeout: this.deps.connectTimeoutMs,
      // A blocked connection has nothing to pipeline with (and ioredis 6.0.0 breaks callBuffer under auto-pipelining).
      enableAutoPipelining: false,
      // A read lost in a disconnect fails (ConnectionLoss) and the reader decides what to read next.
      autoResendUnfulfilledCommands: false,
    });
    conn.on('error', (e: unknown) => this.deps.logger.debug('mailbox: redis connection error', { role, error: String(e) }));
    await connectOrExplain(conn, this.deps.connectTimeoutMs);
    return conn;
  }
}


/** Removes the sequence tag from an entry's fields and parses it (undefined: untagged or malformed). */
function takeTag(e: WireEntry): { producer: string; seq: number } | undefined {
  const raw = e.fields?.get(SEQ_FIELD)?.toString('latin1');
  if (raw === undefined) return undefined;
  e.fields!.delete(SEQ_FIELD);
  const dot = raw.lastIndexOf('.');
  const seq = parseInt(raw.slice(dot + 1), 36);
  if (dot <= 0 || !Number.isSafeInteger(seq)) return undefined;
  return { producer: raw.slice(0, dot), seq };
}

function flatten(fields: WireFields): (string | Buffer)[] {
  const out: (string | Buffer)[] = [];
  for (const [k, v] of fields) out.push(k, v);
  return out;
}

/**
 * Entries of an XREAD/XREADGROUP reply, whatever the protocol shape: RESP2 `[[key, entries]…]`,
 * RESP3 with legacy mapping `[key, entries, …]`, RESP3 maps as objects `{key: entries}`; null = none.
 */
export function parseStreamsReply(reply: unknown): WireEntry[] {
  if (reply === null || reply === undefined) return [];
  const lists: unknown[] = [];
  if (Array.isArray(reply)) {
    if (reply.length > 0 && Array.isArray(reply[0])) for (const pair of reply) lists.push((pair as unknown[])[1]);
    else for (let i = 1; i < reply.length; i += 2) lists.push(reply[i]);
  } else if (typeof reply === 'object') {
    lists.push(...Object.values(reply as Record<string, unknown>));
  }
  const out: WireEntry[] = [];
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    for (const raw of list) {
      const [idRaw, fieldsRaw] = raw as [Buffer | string, (Buffer | string)[] | null];
      const id = idRaw.toString();
      if (!Array.isArray(fieldsRaw)) {
        out.push({ id, fields: undefined });
        continue;
      }
      const fields: WireFields = new Map();
      for (let i = 0; i + 1 < fieldsRaw.length; i += 2) {
        const v = fieldsRaw[i + 1]!;
        fields.set(fieldsRaw[i]!.toString(), Buffer.isBuffer(v) ? v : Buffer.from(v));
      }
      out.push({ id, fields });
    }
  }
  return out;
}
