/**
 * WAL backend on Redis Streams (ioredis): one stream per pchannel, fencing terms in Redis, every
 * multi-step change one Lua script (scripts/*.lua, registered by scripts/loader.ts), every key from
 * keys.ts, negative script replies mapped to typed errors by error-codes.ts. See ./README.md for the
 * key layout, the id format, the fencing argument and what an acknowledged append means.
 *
 * Connections: one command connection (given, or created from a URL) carries appends, truncates,
 * opens and catch-up reads, in call order; each tail reader gets its own dedicated connection for
 * XREAD BLOCK (at most `maxReaders` at once).
 */
import { Redis } from 'ioredis';
import { redisUnreachable } from '../../redis/connect';
import type { Clock } from '../../../runtime/clock';
import { validateChannel, type PChannelInfo, type WalBackend, type WalLog } from '../backend';
import { ErrorCode, StreamingError, isStreamingError } from '../../../runtime/errors';
import { ConnectionLoss } from '../../../runtime/redis/connection-loss';
import { connectionLost, errorCodeOf, expectInteger, walScriptError } from './error-codes';
import type { WalKeys } from './keys';
import { type RedisWalBackendOptions, type ResolvedRedisWalOptions, resolveRedisWalOptions } from './options';
import type { TailConnection } from './redis-reader';
import { RedisWalLog } from './redis-wal-log';
import { WAL_SCRIPTS, registerScripts, type ScriptRunner, type WalScriptName } from './scripts/loader';

export type { RedisWalBackendOptions, RedisWalLogger } from './options';
export { REDIS_WAL_DEFAULTS } from './options';

/** XTRIM MINID and exclusive XRANGE bounds arrived in Redis 6.2. */
const MIN_REDIS_VERSION: readonly [number, number] = [6, 2];
const DEFAULT_CONNECTION_NAME = 'walstream-wal';

export class RedisWalBackend implements WalBackend {
  readonly name = 'redis';
  readonly keys: WalKeys;
  private readonly logs = new Set<RedisWalLog>();
  private readonly tails = new Set<Redis>();
  private closing: Promise<void> | undefined;
  /** Rejects commands in flight on the command connection when it drops (ioredis would leave them pending for ever). */
  private readonly commands: ConnectionLoss;

  private constructor(
    /** @internal The command connection. */
    readonly client: Redis,
    private readonly ownsClient: boolean,
    /** @internal */
    readonly scripts: ScriptRunner<WalScriptName>,
    /** @internal */
    readonly opts: ResolvedRedisWalOptions,
  ) {
    this.keys = opts.keys;
    const { logger } = opts;
    this.commands = new ConnectionLoss(client, {
      lost: () => connectionLost('command connection'),
      onDrop: (inFlight) => {
        if (!this.closed) logger.warn('redis wal: connection to Redis lost; commands in flight fail with an unknown outcome', { inFlight });
      },
      onRestore: (downMs) => {
        if (!this.closed) logger.warn('redis wal: reconnected to Redis', { downMs });
      },
    });
  }

  /**
   * Validates the options, connects (URL form) or checks the given client, verifies the Redis version
   * (≥ 6.2) and registers the scripts. Fails with a clear, retriable INNER error when Redis does not answer.
   */
  static async connect(options: RedisWalBackendOptions): Promise<RedisWalBackend> {
    const opts = resolveRedisWalOptions(options);
    let client: Redis;
    const owns = typeof opts.redis === 'string';
    /** An owned connection reconnects only once it has been ready: a failed first connect ends it for good. */
    let reconnect = false;
    if (typeof opts.redis === 'string') {
      client = new Redis(opts.redis, {
        connectionName: DEFAULT_CONNECTION_NAME,
        connectTimeout: opts.connectTimeoutMs,
        lazyConnect: true,
        retryStrategy: (attempt) => (reconnect ? Math.min(attempt * 50, 2000) : null), // ioredis' default back-off
        // An append whose reply was lost in a disconnect fails (ambiguous) instead of being sent again
        // after the reconnect, which could apply the batch twice behind the caller's back.
        autoResendUnfulfilledCommands: false,
      });
      client.on('error', (e: unknown) => opts.logger.debug('redis connection error', { error: String(e) }));
    } else {
      client = opts.redis;
    }
    try {
      if (owns || client.status === 'wait') await client.connect(); // 'wait': a given lazyConnect client
      const info = await withTimeout(opts.clock, client.info('server'), opts.connectTimeoutMs, 'INFO server');
      checkVersion(info);
      await warnOnEviction(client, opts);
      reconnect = true;
    } catch (e) {
      if (owns) disconnectNow(client);
      if (isStreamingError(e)) throw e;
      throw redisUnreachable(client, opts.connectTimeoutMs, e, 'redis wal: cannot reach Redis');
    }
    return new RedisWalBackend(client, owns, registerScripts(client, WAL_SCRIPTS), opts);
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Tail connections currently open (for tests and metrics). */
  get tailConnections(): number {
    return this.tails.size;
  }

  async open(channel: PChannelInfo): Promise<WalLog> {
    validateChannel(channel);
    if (this.closed) throw backendClosed();
    const info: PChannelInfo = { name: channel.name, term: channel.term, accessMode: channel.accessMode };
    let epoch: number | undefined;
    if (info.accessMode === 'rw') epoch = await this.claim(info);
    const log = new RedisWalLog(info, this, epoch);
    this.logs.add(log);
    if (this.closed) {
      await log.close();
      throw backendClosed();
    }
    return log;
  }

  /**
   * Refuses new work, ends every reader at once, waits (≤ closeTimeoutMs) for appends already sent,
   * disconnects the tail connections and quits the command connection if the backend created it
   * (a given client is left open). Idempotent; never throws.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const { clock, closeTimeoutMs, logger } = this.opts;
      for (const l of this.logs) l.interruptReaders();
      const drained = await withTimeout(clock, Promise.allSettled([...this.logs].map((l) => l.close())), closeTimeoutMs, 'draining appends').then(
        (results) => {
          for (const r of results) if (r.status === 'rejected') logger.warn('closing a wal log failed', { error: String(r.reason) });
          return true;
        },
        () => false,
      );
      if (!drained) logger.warn('redis wal close: appends still in flight after closeTimeoutMs; disconnecting', { closeTimeoutMs });
      this.logs.clear();
      for (const t of this.tails) disconnectNow(t);
      this.tails.clear();
      if (this.ownsClient) {
        const quit = drained ? await withTimeout(clock, this.client.quit(), closeTimeoutMs, 'QUIT').then(() => true, () => false) : false;
        if (!quit) disconnectNow(this.client);
      }
    })();
    return this.closing;
  }

  /**
   * @internal A command sent on the command connection, rejected with a retriable INNER error (outcome
   * unknown) if the connection drops before its reply: with `autoResendUnfulfilledCommands: false`
   * ioredis 6.0.0 would leave it pending for ever (redis/ioredis#2193).
   */
  track<T>(send: () => Promise<T>): Promise<T> {
    return this.commands.track(send);
  }

  /** @internal */
  forget(log: RedisWalLog): void {
    this.logs.delete(log);
  }

  /** @internal A dedicated connection for one tail reader, within the `maxReaders` cap. */
  openTailConnection(): TailConnection {
    if (this.closed) throw backendClosed();
    if (this.tails.size >= this.opts.maxReaders) {
      throw new StreamingError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `redis wal: ${this.tails.size} tail readers already hold a connection (maxReaders ${this.opts.maxReaders})`,
        { details: { maxReaders: this.opts.maxReaders } },
      );
    }
    const name = this.client.options.connectionName ?? DEFAULT_CONNECTION_NAME;
    const connection = this.client.duplicate({
      connectionName: `${name}-tail`,
      // A user's commandTimeout would cut every BLOCK short; the block itself is bounded by tailBlockMs.
      commandTimeout: undefined,
      lazyConnect: false,
      // The first XREAD is sent while the new connection is still connecting.
      enableOfflineQueue: true,
      // A blocked XREAD lost in a disconnect is re-issued by the reader (ConnectionLoss rejects it);
      // resent by ioredis too, a stale BLOCK would sit in front of the reader's own.
      autoResendUnfulfilledCommands: false,
    });
    connection.on('error', (e: unknown) => this.opts.logger.debug('redis tail connection error', { error: String(e) }));
    const loss = new ConnectionLoss(connection, { lost: () => connectionLost('tail reader connection') });
    this.tails.add(connection);
    let released = false;
    return {
      connection,
      track: (send) => loss.track(send),
      release: () => {
        if (released) return;
        released = true;
        this.tails.delete(connection);
        disconnectNow(connection);
      },
    };
  }

  /** Runs open-1.lua: the term becomes current (≥ the stored one) and this open gets a new epoch. */
  private async claim(info: PChannelInfo): Promise<number> {
    const termKey = this.keys.term(info.name);
    let reply: unknown;
    try {
      reply = await this.track(() => this.scripts.run('open', [termKey], [info.term]));
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      throw new StreamingError(ErrorCode.INNER, `redis wal: opening pchannel ${info.name} failed: ${message}`, {
        cause: e,
        details: { pchannel: info.name },
      });
    }
    const code = errorCodeOf(reply);
    if (code !== undefined) {
      const current = await this.track(() => this.client.hget(termKey, 'term')).catch(() => null);
      throw walScriptError(code, {
        script: 'open',
        pchannel: info.name,
        term: info.term,
        ...(current !== null && current !== undefined ? { currentTerm: Number(current) } : {}),
      });
    }
    return expectInteger(reply, { script: 'open', pchannel: info.name, term: info.term });
  }
}

/**
 * Closes a connection at once (pending replies are dropped). Skipped when it already ended: ioredis'
 * disconnect() on a dead socket arms a 2 s timer that nothing clears, which keeps the process alive.
 */
function disconnectNow(connection: Redis): void {
  if (connection.status !== 'end') connection.disconnect();
}

/** An `allkeys-*` eviction policy may evict the log itself under memory pressure. Best effort: CONFIG may be disabled. */
async function warnOnEviction(client: Redis, opts: ResolvedRedisWalOptions): Promise<void> {
  try {
    const reply = (await withTimeout(opts.clock, client.config('GET', 'maxmemory-policy'), opts.connectTimeoutMs, 'CONFIG GET')) as unknown;
    const policy = Array.isArray(reply) ? String(reply[1] ?? '') : '';
    if (policy.startsWith('allkeys-')) {
      opts.logger.warn('redis wal: maxmemory-policy lets Redis evict WAL streams under memory pressure; use noeviction', { policy });
    }
  } catch {
    // not allowed (managed Redis) or not answered: nothing to check
  }
}

function backendClosed(): StreamingError {
  return new StreamingError(ErrorCode.ON_SHUTDOWN, 'redis wal backend is closed');
}

function checkVersion(info: string): void {
  const version = /redis_version:(\d+)\.(\d+)/.exec(info);
  const major = Number(version?.[1] ?? 0);
  const minor = Number(version?.[2] ?? 0);
  const [wantMajor, wantMinor] = MIN_REDIS_VERSION;
  if (major < wantMajor || (major === wantMajor && minor < wantMinor)) {
    throw new StreamingError(
      ErrorCode.UNRECOVERABLE,
      `redis wal needs Redis >= ${wantMajor}.${wantMinor} (XTRIM MINID, exclusive XRANGE); the server reports ${version ? `${major}.${minor}` : 'no version'}`,
      { details: { major, minor }, retriable: false },
    );
  }
}

function withTimeout<T>(clock: Clock, p: Promise<T>, ms: number, what: string): Promise<T> {
  let cancel = (): void => undefined;
  const timeout = new Promise<never>((_, reject) => {
    const t = clock.setTimeout(() => reject(new Error(`${what}: no reply within ${ms} ms`)), ms);
    cancel = () => t.cancel();
  });
  return Promise.race([p, timeout]).finally(cancel);
}
