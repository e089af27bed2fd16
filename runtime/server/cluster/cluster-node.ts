/**
 * `walstream node`: one streaming node of a cluster. It registers itself on a lease (self-fencing
 * when it cannot renew), serves its mailbox address (assign/remove from the coordinator, appends
 * and subscriptions from clients), runs its WALs on the configured backend (Redis Streams, or local
 * files on a disk every node shares), takes timestamps from the cluster TSO on Redis, queues flush
 * jobs on BullMQ and runs flush jobs itself (their file step on flush threads, as in standalone:
 * storage/flush/from-config.ts). `close()` leaves the cluster gracefully.
 */
import { start, stop, type Ref } from 'nact';
import * as os from 'node:os';
import Redis from 'ioredis';
import { systemClock, type Clock } from '../../clock';
import { ask } from '../../ask';
import { createLogger, type Logger } from '../../logger';
import { TsoAllocator } from '../../tso';
import { RedisTimestampSource } from '../../tso/redis/redis-timestamp-source';
import type { WalstreamConfig } from '../../../config/schema';
import { RedisMetaStore } from '../../../storage/meta/redis/redis-meta-store';
import { RedisMailbox } from '../../mailbox/redis/redis-mailbox';
import { nodeAddress, serveNode } from '../../mailbox/transports';
import type { MailboxServer } from '../../mailbox/mailbox';
import type { WalBackend } from '../../../storage/wal/backend';
import { RedisWalBackend } from '../../../storage/wal/redis/redis-backend';
import { openObjectStore } from '../../../storage/objects/open';
import type { ObjectStore } from '../../../storage/objects/object-store';
import { BullMqFlushQueue, BullMqFlushRunner } from '../../../storage/flush/bullmq-flush-queue';
import type { SegmentFlushWorker } from '../../../storage/flush/flush-worker';
import { createFlushWorker } from '../../../storage/flush/from-config';
import { openLocalWalBackend, redisWalKeyPrefix } from '../../../storage/wal/open';
import { spawnStreamingNode } from '../../../actors/streaming-node/node-actor';
import type { NodeMsg } from '../../../actors/streaming-node/messages';
import { walOptions } from '../../../actors/wal/options';
import { MemoryBudget } from '../../../actors/wal/segments';
import { NodeMembership } from './membership';
import { bullConnection, redisOptionsFromUrl } from './redis-connection';

export class ClusterNode {
  private closing: Promise<void> | undefined;

  private constructor(
    readonly nodeId: string,
    private readonly parts: {
      system: Ref<never>;
      node: Ref<NodeMsg>;
      meta: RedisMetaStore;
      mailbox: RedisMailbox;
      server: MailboxServer;
      membership: NodeMembership;
      backend: WalBackend;
      objects: ObjectStore;
      flushQueue: BullMqFlushQueue;
      flushRunner: BullMqFlushRunner;
      flushWorker: SegmentFlushWorker;
      tsoRedis: Redis;
    },
    private readonly logger: Logger,
  ) {}

  get membership(): NodeMembership {
    return this.parts.membership;
  }

  static async start(config: WalstreamConfig, clock: Clock = systemClock): Promise<ClusterNode> {
    const logger = createLogger(`node.${config.nodeId}`);
    const redis = redisOptionsFromUrl(config.redis.url);
    const prefix = config.redis.keyPrefix;
    const meta = await RedisMetaStore.connect({ redis, prefix: `${prefix}:meta:`, clock });
    const mailbox = await RedisMailbox.connect({ redis, prefix, clock });
    const backend: WalBackend =
      config.wal.backend === 'redis'
        ? await RedisWalBackend.connect({ redis: config.redis.url, keyPrefix: redisWalKeyPrefix(config), clock })
        : openLocalWalBackend(config, clock);
    const objects = await openObjectStore(config.objectStore, clock);
    const connection = bullConnection(redis);
    const flushQueue = new BullMqFlushQueue({ connection, prefix });
    // The same worker as standalone: the file step of each job on flush threads (flush.threads).
    const flushWorker = createFlushWorker(config, { backend, objects, meta, logger });
    const flushRunner = new BullMqFlushRunner(flushWorker, { connection, prefix });
    const tsoRedis = new Redis({ ...redis, connectionName: 'walstream-tso' });
    // Without a listener ioredis prints "Unhandled error event" on every reconnect attempt; it reconnects on its own.
    tsoRedis.on('error', (e: unknown) => logger.debug('tso redis connection error', { error: String(e) }));
    const tso = new RedisTimestampSource(tsoRedis, prefix);
    const system = start() as Ref<never>;
    const node = spawnStreamingNode(system, {
      nodeId: config.nodeId,
      backend,
      wal: {
        meta,
        flushQueue,
        ...(flushWorker.writeBuffer ? { writeBuffer: flushWorker.writeBuffer } : {}),
        segmentIds: { next: () => meta.nextId('segment') },
        segmentLimits: { maxRows: config.segment.maxRows, maxBytes: config.segment.maxBytes, maxIdleMs: config.segment.maxIdleMs, maxLifetimeMs: config.segment.maxLifetimeMs },
        recovery: config.recovery,
      },
      memoryBudget: new MemoryBudget(config.segment.memoryHighWaterBytes, config.segment.memoryLowWaterBytes),
      newTso: () => new TsoAllocator({ source: tso, clock }),
      clock,
      walOptions: walOptions(config.wal),
      logger,
      // The coordinator finds pchannels a node gave up when it next verifies the node.
      onUnavailable: (pchannel, term, error) => logger.warn('pchannel given up; the coordinator moves it', { pchannel, term, error: error.message }),
    });
    const server = await serveNode(mailbox, nodeAddress(config.nodeId), node);
    const membership = await NodeMembership.register(
      meta,
      { nodeId: config.nodeId, address: nodeAddress(config.nodeId), startedAt: clock.now(), pid: process.pid },
      {
        ttlMs: config.lease.ttlMs,
        renewIntervalMs: config.lease.renewIntervalMs,
        clock,
        logger,
        // Self-fence: every WAL stops now; the coordinator moves them once the lease is gone.
        onLost: async () => {
          await ask<NodeMsg, void>(node, (replyTo) => ({ type: 'dropAll', replyTo }), 10_000, 'drop every WAL').catch((e: unknown) =>
            logger.error('dropping WALs after losing the lease failed', { error: String(e) }),
          );
        },
      },
    );
    logger.info('streaming node started', { node: config.nodeId, host: os.hostname(), walBackend: config.wal.backend, redis: `${redis.host}:${redis.port}` });
    return new ClusterNode(config.nodeId, { system, node, meta, mailbox, server, membership, backend, objects, flushQueue, flushRunner, flushWorker, tsoRedis }, logger);
  }

  /** Leaves the cluster: unregister (the coordinator moves the pchannels now), stop serving, drain the WALs, release. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const p = this.parts;
    this.logger.info('streaming node leaving the cluster', { node: this.nodeId });
    await p.membership.close();
    await p.server.close().catch(() => undefined);
    await ask<NodeMsg, void>(p.node, (replyTo) => ({ type: 'shutdown', replyTo }), 15_000, 'node shutdown').catch(() => undefined);
    stop(p.system);
    await p.flushRunner.close().catch(() => undefined); // waits for the jobs it runs
    await p.flushWorker.close().catch(() => undefined); // then ends the flush threads
    await p.flushQueue.close().catch(() => undefined);
    await p.backend.close().catch(() => undefined);
    await p.objects.close().catch(() => undefined);
    await p.mailbox.close().catch(() => undefined);
    await p.meta.close().catch(() => undefined);
    await p.tsoRedis.quit().catch(() => undefined);
    this.logger.info('streaming node stopped', { node: this.nodeId });
  }
}
