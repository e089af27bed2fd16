/**
 * Where a process's WAL lives, from its configuration. Defined once: the processes open their
 * backends here, and flush threads (storage/flush/from-config.ts) read the same logs from the same
 * places.
 */
import * as path from 'node:path';
import type { Clock } from '../../runtime/clock';
import type { WalstreamConfig } from '../../config/schema';
import { LocalWalBackend } from './local/local-backend';

/** Directory of the local-file WAL backend: `<dataDir>/wal`. */
export function localWalDir(config: Pick<WalstreamConfig, 'dataDir'>): string {
  return path.join(path.resolve(config.dataDir), 'wal');
}

/** Key prefix of the Redis Streams WAL backend: `<redis.keyPrefix>:wal:`. */
export function redisWalKeyPrefix(config: Pick<WalstreamConfig, 'redis'>): string {
  return `${config.redis.keyPrefix}:wal:`;
}

/** The local-file WAL backend of `config`: its directory, fsync policy and segment size. */
export function openLocalWalBackend(config: Pick<WalstreamConfig, 'dataDir' | 'wal'>, clock: Clock): LocalWalBackend {
  const { fsync, fsyncIntervalMs, segmentBytes } = config.wal.local;
  return new LocalWalBackend({ dir: localWalDir(config), fsync, fsyncIntervalMs, segmentBytes, clock });
}
