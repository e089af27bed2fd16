/**
 * The cluster mailbox on Redis Streams: the WireMailbox over RedisWire. Every key comes from
 * MailboxKeys (./keys.ts); see ./redis-wire.ts for connections and stream commands and
 * ../README.md for the wire format.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { systemClock } from '../../clock';
import { invalidArgument } from '../../errors';
import { createLogger, type Logger } from '../../logger';
import { mailboxOptions, type MailboxOptions } from '../mailbox';
import { WireMailbox } from '../wire-mailbox';
import { DEFAULT_MAILBOX_PREFIX, MailboxKeys } from './keys';
import { RedisWire } from './redis-wire';
import { connectOrExplain } from '../../../storage/redis/connect';

export interface RedisMailboxOptions extends Partial<MailboxOptions> {
  /**
   * ioredis connection options (host, port, password, db, tls …). Default host 127.0.0.1, port 6379.
   * `keyPrefix` is refused (keys come from MailboxKeys): use `prefix`.
   */
  redis?: RedisOptions;
  /** Keys are `{prefix}:mailbox:…`; no braces, glob characters or whitespace. Default "walstream". */
  prefix?: string;
  /** Connect timeout of each connection (ms). Default 5000. */
  connectTimeoutMs?: number;
  logger?: Logger;
}

export class RedisMailbox extends WireMailbox {
  private constructor(
    wire: RedisWire,
    options: MailboxOptions,
    readonly keys: MailboxKeys,
    logger: Logger,
  ) {
    super(wire, options, logger);
  }

  /** Connects the command connection (failing with a clear, retriable INNER error when Redis does not answer). Readers connect on first use. */
  static async connect(opts: RedisMailboxOptions = {}): Promise<RedisMailbox> {
    const { redis, prefix, connectTimeoutMs = 5000, logger = createLogger('mailbox.redis'), ...rest } = opts;
    const options = mailboxOptions(rest);
    const keys = new MailboxKeys(prefix ?? DEFAULT_MAILBOX_PREFIX);
    if (redis?.keyPrefix) throw invalidArgument('RedisMailboxOptions.redis.keyPrefix is not supported; use prefix', { field: 'redis.keyPrefix' });
    if (!Number.isSafeInteger(connectTimeoutMs) || connectTimeoutMs < 1) throw invalidArgument('connectTimeoutMs must be a positive integer', { field: 'connectTimeoutMs' });
    const connection: RedisOptions = { host: '127.0.0.1', port: 6379, connectionName: 'walstream-mailbox', ...redis };
    const command = new Redis({ ...connection, connectTimeout: connectTimeoutMs, lazyConnect: true });
    command.on('error', (e: unknown) => logger.debug('mailbox: redis connection error', { error: String(e) }));
    await connectOrExplain(command, connectTimeoutMs);
    const wire = new RedisWire({ command, connection, keys, options, clock: options.clock ?? systemClock, logger, connectTimeoutMs });
    return new RedisMailbox(wire, options, keys, logger);
  }
}
