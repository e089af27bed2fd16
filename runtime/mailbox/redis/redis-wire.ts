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
 */
import type { Redis, RedisOptions } from 'ioredis';
import { Redis as RedisClient } from 'ioredis';
import type { Clock, TimerHandle } from '../../clock';
import { ErrorCode, StreamingError } from '../../errors';
import type { Logger } from '../../logger';
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

export class RedisWire implements MailboxWire {
  readonly name = 'redis';
  private readonly readers = new Set<{ close(): Promise<void> }>();
  private closing: Promise<void> | undefined;

  constructor(private readonly deps: RedisWireDeps) {}

  private get cmd(): Redis {
    return this.deps.command;
  }

  async sendRequest(address: string, fields: WireFields): Promise<void> {
    await this.cmd.xaddBuffer(this.deps.keys.inbox(address), 'MAXLEN', '~', this.deps.options.inboxMaxLen, '*', ...flatten(fields));
  }

  async sendReply(clientId: string, fields: WireFields): Promise<boolean> {
    const id = await this.cmd.xaddBuffer(this.deps.keys.replies(clientId), 'NOMKSTREAM', 'MAXLEN', '~', this.deps.options.replyMaxLen, '*', ...flatten(fields));
    return id !== null && id !== undefined;
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
          const reply = await conn.callBuffer('XREAD', 'COUNT', options.readCount, 'BLOCK', options.blockMs, 'STREAMS', key, last);
          backoff = BACKOFF_MIN_MS;
          const entries = parseStreamsReply(reply);
          if (entries.length === 0) continue;
          last = entries[entries.length - 1]!.id;
          deliver(entries);
        } catch (e) {
          if (stopped) break;
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
          const reply =
            cursor !== undefined
              ? await conn.callBuffer('XREADGROUP', 'GROUP', MAILBOX_GROUP, consumer, 'COUNT', count, 'STREAMS', key, cursor)
              : await conn.callBuffer('XREADGROUP', 'GROUP', MAILBOX_GROUP, consumer, 'COUNT', count, 'BLOCK', options.blockMs, 'STREAMS', key, '>');
          backoff = BACKOFF_MIN_MS;
          const entries = parseStreamsReply(reply);
          if (cursor !== undefined) {
            if (entries.length === 0) cursor = undefined;
            else cursor = entries[entries.length - 1]!.id;
          }
          if (entries.length > 0 && !stopped) target.deliver(entries);
        } catch (e) {
          if (stopped) break;
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
      ack: async (ids: readonly string[]): Promise<void> => {
        if (ids.length > 0) await this.cmd.xack(key, MAILBOX_GROUP, ...ids);
      },
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
    });
    conn.on('error', (e: unknown) => this.deps.logger.debug('mailbox: redis connection error', { role, error: String(e) }));
    await connectOrExplain(conn, this.deps.connectTimeoutMs);
    return conn;
  }
}

/**
 * `connect()` that rejects with a clear, retriable INNER error when Redis does not answer (the
 * pattern of storage/meta/redis/redis-meta-store.ts). The first attempt does not retry (the caller
 * decides); afterwards the configured retry strategy applies to reconnects. A failed first attempt
 * ends the client with status "end": `disconnect()` then would leave ioredis's 2 s disconnect timer
 * on an already-closed socket (and keep the process alive).
 */
export async function connectOrExplain(client: Redis, timeoutMs: number): Promise<void> {
  const { host, port } = client.options;
  const retryStrategy = client.options.retryStrategy;
  client.options.retryStrategy = () => null;
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    if (client.status !== 'end') client.disconnect();
    const message = e instanceof Error ? e.message : String(e);
    throw new StreamingError(
      ErrorCode.INNER,
      `cannot connect to Redis at ${host ?? '?'}:${port ?? '?'} (timeout ${timeoutMs} ms): ${message}. Is redis-server running there?`,
      { cause: e, details: { host, port } },
    );
  } finally {
    client.options.retryStrategy = retryStrategy;
  }
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
