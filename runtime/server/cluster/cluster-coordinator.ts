/**
 * `walstream coordinator`: a coordinator candidate of a cluster. It campaigns for the leadership;
 * while it leads it runs the coordinator actor (state in the Redis MetaStore, every write a leader
 * write at its epoch), learns node ups and downs from the node leases, reaches nodes through the
 * mailbox and serves the coordinator's mailbox address. A standby takes over when the leader dies
 * and continues from the persisted state (ASSIGNING operations are resumed).
 */
import { dispatch, start, stop, type Ref } from 'nact';
import { systemClock, type Clock } from '../../clock';
import { ask } from '../../ask';
import { createLogger, type Logger } from '../../logger';
import type { WalstreamConfig } from '../../../config/schema';
import { pchannelNames } from '../../../config/schema';
import { RedisMetaStore } from '../../../storage/meta/redis/redis-meta-store';
import type { Unsubscribe } from '../../../storage/meta/meta-store';
import { RedisMailbox } from '../../mailbox/redis/redis-mailbox';
import { COORDINATOR_ADDRESS, MailboxCoordinatorTransport, MailboxNodeControl, MailboxNodeTransport, serveCoordinator } from '../../mailbox/transports';
import type { MailboxServer } from '../../mailbox/mailbox';
import { Client } from '../../client/client';
import { InProcessCoordinatorTransport } from '../../client/in-process';
import { spawnCoordinator } from '../../../actors/coordinator/coordinator-actor';
import type { CoordinatorMsg } from '../../../actors/coordinator/messages';
import { MetaCoordinatorStore } from '../../../actors/coordinator/meta-coordinator-store';
import { COORDINATOR_ELECTION, CoordinatorElection } from './election';
import { watchNodes } from './membership';
import { redisOptionsFromUrl } from './redis-connection';

interface Leading {
  system: Ref<never>;
  coordinator: Ref<CoordinatorMsg>;
  client: Client;
  server: MailboxServer;
  unwatch: Unsubscribe;
}

export class ClusterCoordinator {
  private leading: Leading | undefined;
  private closing: Promise<void> | undefined;
  private readonly election: CoordinatorElection;

  private constructor(
    private readonly config: WalstreamConfig,
    private readonly meta: RedisMetaStore,
    private readonly mailbox: RedisMailbox,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.election = new CoordinatorElection(meta, config.nodeId, {
      ttlMs: config.lease.ttlMs,
      renewIntervalMs: config.lease.renewIntervalMs,
      clock,
      logger,
      onElected: async (l) => this.lead(l.epoch),
      onDeposed: async () => this.stepDown(),
    });
  }

  static async start(config: WalstreamConfig, clock: Clock = systemClock): Promise<ClusterCoordinator> {
    const logger = createLogger(`coordinator.${config.nodeId}`);
    const redis = redisOptionsFromUrl(config.redis.url);
    const meta = await RedisMetaStore.connect({ redis, prefix: `${config.redis.keyPrefix}:meta:`, clock });
    const mailbox = await RedisMailbox.connect({ redis, prefix: config.redis.keyPrefix, clock });
    const c = new ClusterCoordinator(config, meta, mailbox, clock, logger);
    c.election.start();
    logger.info('coordinator candidate started', { candidate: config.nodeId });
    return c;
  }

  get isLeader(): boolean {
    return this.leading !== undefined;
  }

  private async lead(epoch: number): Promise<void> {
    const system = start() as Ref<never>;
    let client: Client | undefined;
    const coordinator = spawnCoordinator(system, {
      pchannels: pchannelNames(this.config),
      store: new MetaCoordinatorStore(this.meta, { name: COORDINATOR_ELECTION, epoch }),
      nodes: new MailboxNodeControl(this.mailbox),
      router: () => client!.router,
      clock: this.clock,
      options: {
        operationTimeoutMs: this.config.coordinator.operationTimeoutMs,
        backoffInitialMs: this.config.coordinator.backoffInitialMs,
        backoffMaxMs: this.config.coordinator.backoffMaxMs,
        verifyIntervalMs: this.config.coordinator.balanceIntervalMs,
      },
      logger: this.logger,
    });
    client = new Client(new InProcessCoordinatorTransport(coordinator), new MailboxNodeTransport(this.mailbox), { clock: this.clock, logger: this.logger });
    const unwatch = await watchNodes(
      this.meta,
      (info) => dispatch(coordinator, { type: 'nodeUp', nodeId: info.nodeId }),
      (nodeId) => dispatch(coordinator, { type: 'nodeDown', nodeId }),
    );
    const server = await serveCoordinator(this.mailbox, COORDINATOR_ADDRESS, coordinator);
    this.leading = { system, coordinator, client, server, unwatch };
    this.logger.info('coordinator leading', { candidate: this.config.nodeId, epoch });
  }

  private async stepDown(): Promise<void> {
    const l = this.leading;
    this.leading = undefined;
    if (!l) return;
    await l.server.close().catch(() => undefined);
    await l.unwatch().catch(() => undefined);
    await l.client.close();
    await ask<CoordinatorMsg, void>(l.coordinator, (replyTo) => ({ type: 'shutdown', replyTo }), 5_000, 'coordinator shutdown').catch(() => undefined);
    stop(l.system);
  }

  /** Resigns (a standby takes over at once) and releases everything. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.election.close();
      await this.stepDown();
      await this.mailbox.close().catch(() => undefined);
      await this.meta.close().catch(() => undefined);
      this.logger.info('coordinator stopped', { candidate: this.config.nodeId });
    })();
    return this.closing;
  }
}

/** A client of a cluster, over the Redis mailbox. */
export async function connectClusterClient(config: Pick<WalstreamConfig, 'redis'>, clock: Clock = systemClock): Promise<{ client: Client; close(): Promise<void> }> {
  const mailbox = await RedisMailbox.connect({ redis: redisOptionsFromUrl(config.redis.url), prefix: config.redis.keyPrefix, clock });
  const client = new Client(new MailboxCoordinatorTransport(mailbox), new MailboxNodeTransport(mailbox), { clock });
  return {
    client,
    async close() {
      await client.close();
      await mailbox.close();
    },
  };
}
