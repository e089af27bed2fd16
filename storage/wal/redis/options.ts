/**
 * Options of the Redis Streams WAL backend, validated once in `RedisWalBackend.connect`.
 */
import type { Redis } from 'ioredis';
import { type Clock, systemClock } from '../../../runtime/clock';
import { invalidArgument } from '../../../runtime/errors';
import { createLogger } from '../../../runtime/logger';
import { DEFAULT_WAL_KEY_PREFIX, WalKeys } from './keys';

/** Minimal logger the backend needs (winston's Logger fits). */
export interface RedisWalLogger {
  warn(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
}

export interface RedisWalBackendOptions {
  /**
   * The Redis to use. Required.
   * - a URL (`redis://[:password@]host:port[/db]`, `rediss://…`): the backend creates its command
   *   connection (ioredis defaults, except: no reconnect until the first connect succeeded, and
   *   `autoResendUnfulfilledCommands: false`, so an append whose reply was lost fails instead of
   *   being applied twice) and quits it on close();
   * - an ioredis client: the backend runs its commands on it (and registers its scripts on it with
   *   defineCommand) but never quits it — the owner does; its settings apply as they are. Its
   *   `keyPrefix` option must be unset (use `keyPrefix` below).
   * Tail readers get their own connections either way (duplicates of the command connection).
   */
  redis: Redis | string;
  /** Prefix of every key; no braces, glob characters or whitespace. Default `walstream:wal:`. */
  keyPrefix?: string;
  /**
   * Most tail readers (dedicated blocking connections) open at once on this backend. A reader takes a
   * connection when it first reaches the tail and gives it back when it ends; a reader that would
   * exceed the cap fails with RESOURCE_EXHAUSTED (retriable). Catch-up reads do not count. Default 64.
   */
  maxReaders?: number;
  /** Entries fetched per XRANGE (catch-up) or XREAD (tail) call: the COUNT. Default 1000. Range 1..100000. */
  readChunk?: number;
  /**
   * Longest a tail reader's XREAD BLOCK waits before it is re-issued, in milliseconds. Abort and close
   * do not wait for it (they disconnect the blocked connection); it only bounds how long a blocked
   * connection stays silent. Default 10000. Range 1..600000.
   */
  tailBlockMs?: number;
  /**
   * Optional replication barrier: after each append batch, `WAIT replicas timeoutMs` on the same
   * connection (pipelined right behind the append script, so still one round trip of latency plus
   * the replication delay). An append whose batch reached fewer replicas in time rejects with a
   * retriable INNER error (the records are in the primary's stream; a retry may duplicate them).
   * Default: unset (acknowledged when the primary applied the script; see README "Durability").
   */
  waitForReplicas?: { replicas: number; timeoutMs: number };
  /** Timeout of the first connection and version check at connect(), in milliseconds. Default 5000. */
  connectTimeoutMs?: number;
  /**
   * Longest close() waits for appends already sent and for QUIT, in milliseconds; after that it
   * disconnects (pending appends then reject; they may or may not have been applied). Default 5000.
   */
  closeTimeoutMs?: number;
  /** Source of timers. Default systemClock. */
  clock?: Clock;
  /** Default: the `backend.redis` namespaced logger. */
  logger?: RedisWalLogger;
}

export const REDIS_WAL_DEFAULTS = {
  keyPrefix: DEFAULT_WAL_KEY_PREFIX,
  maxReaders: 64,
  readChunk: 1000,
  tailBlockMs: 10_000,
  connectTimeoutMs: 5000,
  closeTimeoutMs: 5000,
} as const;

export interface ResolvedRedisWalOptions {
  readonly redis: Redis | string;
  readonly keys: WalKeys;
  readonly maxReaders: number;
  readonly readChunk: number;
  readonly tailBlockMs: number;
  readonly waitForReplicas: { readonly replicas: number; readonly timeoutMs: number } | undefined;
  readonly connectTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: RedisWalLogger;
}

export function resolveRedisWalOptions(o: RedisWalBackendOptions): ResolvedRedisWalOptions {
  if (o === null || typeof o !== 'object') throw invalidArgument('redis wal: options must be an object', {});
  if (typeof o.redis === 'string') {
    if (!/^rediss?:\/\//.test(o.redis)) throw invalidArgument('redis wal: redis must be a redis:// or rediss:// URL or an ioredis client', { field: 'redis' });
  } else if (o.redis === null || typeof o.redis !== 'object' || typeof (o.redis as { defineCommand?: unknown }).defineCommand !== 'function') {
    throw invalidArgument('redis wal: redis must be a redis:// or rediss:// URL or an ioredis client', { field: 'redis' });
  } else if (o.redis.options.keyPrefix) {
    throw invalidArgument('redis wal: the ioredis client must not set keyPrefix; use the keyPrefix option of the backend', {
      field: 'redis.options.keyPrefix',
    });
  }
  const int = (field: string, v: number | undefined, dflt: number, min: number, max: number): number => {
    const x = v ?? dflt;
    if (!Number.isSafeInteger(x) || x < min || x > max) {
      throw invalidArgument(`redis wal: ${field} must be an integer in ${min}..${max}`, { field, value: v });
    }
    return x;
  };
  let waitForReplicas: ResolvedRedisWalOptions['waitForReplicas'];
  if (o.waitForReplicas !== undefined) {
    waitForReplicas = {
      replicas: int('waitForReplicas.replicas', o.waitForReplicas.replicas, 1, 1, 1000),
      timeoutMs: int('waitForReplicas.timeoutMs', o.waitForReplicas.timeoutMs, 1000, 1, 3_600_000),
    };
  }
  return {
    redis: o.redis,
    keys: new WalKeys(o.keyPrefix ?? REDIS_WAL_DEFAULTS.keyPrefix),
    maxReaders: int('maxReaders', o.maxReaders, REDIS_WAL_DEFAULTS.maxReaders, 1, 100_000),
    readChunk: int('readChunk', o.readChunk, REDIS_WAL_DEFAULTS.readChunk, 1, 100_000),
    tailBlockMs: int('tailBlockMs', o.tailBlockMs, REDIS_WAL_DEFAULTS.tailBlockMs, 1, 600_000),
    waitForReplicas,
    connectTimeoutMs: int('connectTimeoutMs', o.connectTimeoutMs, REDIS_WAL_DEFAULTS.connectTimeoutMs, 1, 600_000),
    closeTimeoutMs: int('closeTimeoutMs', o.closeTimeoutMs, REDIS_WAL_DEFAULTS.closeTimeoutMs, 0, 600_000),
    clock: o.clock ?? systemClock,
    logger: o.logger ?? createLogger('backend.redis'),
  };
}
