/**
 * The flush worker of a process, built from its configuration the same way in standalone and in a
 * cluster node: the file step of each job runs on `flush.threads` flush threads (0: on the calling
 * thread), which open the same WAL and object store as the process from the settings below (the
 * WAL locations come from storage/wal/open.ts, where the processes open theirs), so a flush thread
 * always reads the logs its node writes.
 */
import * as path from 'node:path';
import type { WalstreamConfig } from '../../config/schema';
import { createLogger, type Logger } from '../../runtime/logger';
import type { WalBackend } from '../wal/backend';
import { localWalDir, redisWalKeyPrefix } from '../wal/open';
import type { MetaStore } from '../meta/meta-store';
import type { ObjectStore } from '../objects/object-store';
import { SegmentFlushWorker } from './flush-worker';
import { FlushThreadPool } from './flush-threads';
import { WriteBuffer } from './write-buffer';
import type { FlushThreadSettings, FlushWalSettings } from './flush-thread-protocol';

/**
 * What a flush thread opens, or undefined when the configured WAL cannot be read from another
 * thread: the memory backend keeps its logs in one backend instance, on the thread that made it.
 */
export function flushThreadSettings(config: WalstreamConfig): FlushThreadSettings | undefined {
  let wal: FlushWalSettings;
  switch (config.wal.backend) {
    case 'local':
      wal = { kind: 'local', dir: localWalDir(config) };
      break;
    case 'redis':
      wal = { kind: 'redis', url: config.redis.url, keyPrefix: redisWalKeyPrefix(config) };
      break;
    case 'memory':
      return undefined;
  }
  const objects = { ...config.objectStore, local: { dir: path.resolve(config.objectStore.local.dir) }, s3: { ...config.objectStore.s3 } };
  return { wal, objects, root: config.objectStore.rootPath };
}

export interface FlushWorkerDeps {
  /** The process's WAL backend and object store: used when the file step stays on this thread. */
  backend: WalBackend;
  objects: ObjectStore;
  meta: MetaStore;
  /**
   * Why the file step must stay on this thread although flush.threads > 0 (e.g. `objects` wraps
   * the store with something a thread cannot have); undefined when nothing forbids threads.
   */
  inThreadBecause?: string;
  logger?: Logger;
}

/**
 * The flush worker for `config`: on flush threads when configured and possible, with the write
 * buffer of `flush.writeBufferBytes` (worker.writeBuffer: the process's WALs feed it). Close it
 * after its queue.
 */
export function createFlushWorker(config: WalstreamConfig, deps: FlushWorkerDeps): SegmentFlushWorker {
  const logger = deps.logger ?? createLogger('flush');
  const { backend, objects, meta } = deps;
  const root = config.objectStore.rootPath;
  const threads = config.flush.threads;
  const writeBuffer = config.flush.writeBufferBytes > 0 ? new WriteBuffer({ maxBytes: config.flush.writeBufferBytes, root, logger }) : undefined;
  const common = { backend, objects, meta, root, ...(writeBuffer ? { writeBuffer } : {}) };
  if (threads > 0) {
    const settings = flushThreadSettings(config);
    const why = settings === undefined ? `wal.backend is ${config.wal.backend}: its logs exist only in this thread` : deps.inThreadBecause;
    if (settings !== undefined && why === undefined) return new SegmentFlushWorker({ ...common, threads: new FlushThreadPool({ settings, threads }) });
    logger.info('flush jobs run on the main thread', { reason: why });
  }
  return new SegmentFlushWorker(common);
}
