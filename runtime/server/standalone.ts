/**
 * Standalone walstream: the coordinator and N streaming nodes as actor subtrees of one process,
 * embedded storage in the data directory (WAL on local files, metadata in the embedded MetaStore,
 * the TSO bound in a file), and an in-process client. `close()` shuts down in order: stop intake,
 * drain the WALs, persist, release.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { dispatch, query, start, stop, type Ref } from 'nact';
import { systemClock, type Clock } from '../clock';
import { ask } from '../ask';
import { createLogger, type Logger } from '../logger';
import { StreamingError, ErrorCode } from '../errors';
import { FileTsoStore, TimestampOracle, TsoAllocator } from '../tso';
import type { RestartPolicy } from '../supervision';
import { Client } from '../client/client';
import { InProcessCoordinatorTransport, InProcessNodeTransport } from '../client/in-process';
import type { WalstreamConfig } from '../../config/schema';
import { pchannelNames } from '../../config/schema';
import type { WalBackend } from '../../storage/wal/backend';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import type { MetaStore } from '../../storage/meta/meta-store';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { spawnCoordinator, type NodeControl } from '../../actors/coordinator/coordinator-actor';
import type { CoordinatorMsg } from '../../actors/coordinator/messages';
import { MetaCoordinatorStore } from '../../actors/coordinator/meta-coordinator-store';
import { spawnStreamingNode } from '../../actors/streaming-node/node-actor';
import type { NodeMsg, NodeStatus } from '../../actors/streaming-node/messages';
import { walOptions } from '../../actors/wal/options';
import type { ReplayProgress } from '../../actors/recovery-storage/replay';
import { MemoryBudget } from '../../actors/wal/segments';
import type { NodeWalDeps } from '../../actors/streaming-node/node-actor';
import type { ObjectStore } from '../../storage/objects/object-store';
import { openObjectStore } from '../../storage/objects/open';
import { InlineFlushQueue } from '../../storage/flush/inline-flush-queue';
import type { SegmentFlushWorker } from '../../storage/flush/flush-worker';
import { createFlushWorker } from '../../storage/flush/from-config';
import { openLocalWalBackend } from '../../storage/wal/open';

export interface StandaloneOverrides {
  clock?: Clock;
  /** The WAL backend a node uses (tests inject faults); default: the shared backend. */
  backendFor?: (nodeId: string, shared: WalBackend) => WalBackend;
  /** Wraps the MetaStore (fault injection in tests). */
  metaFor?: (meta: MetaStore) => MetaStore;
  /**
   * Wraps the object store (fault injection in tests). Flush jobs then run on the main thread:
   * flush threads open their own store, without the wrapper.
   */
  objectsFor?: (objects: ObjectStore) => ObjectStore;
  restartPolicy?: RestartPolicy;
  /** How long start() waits for every pchannel to be ready. Default 60000 ms. */
  readyTimeoutMs?: number;
  /** Progress of long replays while pchannels open (the CLI draws a bar). */
  onReplayProgress?: (p: ReplayProgress) => void;
}

export class StandaloneServer {
  private closing: Promise<void> | undefined;

  private constructor(
    readonly config: WalstreamConfig,
    readonly client: Client,
    readonly nodeIds: string[],
    private readonly system: Ref<never>,
    private readonly coordinator: Ref<CoordinatorMsg>,
    private readonly nodes: Map<string, Ref<NodeMsg>>,
    private readonly resources: { meta: MetaStore; oracle: TimestampOracle; backend: WalBackend; objects: ObjectStore; flushQueue: InlineFlushQueue; flushWorker: SegmentFlushWorker },
    private readonly logger: Logger,
  ) {}

  static async start(config: WalstreamConfig, overrides: StandaloneOverrides = {}): Promise<StandaloneServer> {
    const logger = createLogger('standalone');
    const clock = overrides.clock ?? systemClock;
    const dataDir = path.resolve(config.dataDir);
    await fs.mkdir(dataDir, { recursive: true });
    const embedded = await EmbeddedMetaStore.open({ dir: path.join(dataDir, 'meta'), clock });
    const meta: MetaStore = overrides.metaFor ? overrides.metaFor(embedded) : embedded;
    let oracle: TimestampOracle | undefined;
    let backend: WalBackend | undefined;
    let objects: ObjectStore | undefined;
    let flushWorker: SegmentFlushWorker | undefined;
    let flushQueue: InlineFlushQueue | undefined;
    try {
      oracle = await TimestampOracle.open({ store: new FileTsoStore(path.join(dataDir, 'tso', 'bound.json')), clock });
      backend = createBackend(config, clock);
      objects = await openObjectStore(config.objectStore, clock);
      if (overrides.objectsFor) objects = overrides.objectsFor(objects);
      flushWorker = createFlushWorker(config, { backend, objects, meta, ...(overrides.objectsFor ? { inThreadBecause: 'the object store is wrapped (objectsFor)' } : {}) });
      flushQueue = new InlineFlushQueue(flushWorker, clock);
      const walShared: NodeWalDeps = {
        meta,
        flushQueue,
        ...(flushWorker.writeBuffer ? { writeBuffer: flushWorker.writeBuffer } : {}),
        segmentIds: { next: () => meta.nextId('segment') },
        segmentLimits: { maxRows: config.segment.maxRows, maxBytes: config.segment.maxBytes, maxIdleMs: config.segment.maxIdleMs, maxLifetimeMs: config.segment.maxLifetimeMs },
        recovery: config.recovery,
        ...(overrides.onReplayProgress ? { onReplayProgress: overrides.onReplayProgress } : {}),
      };
      const system = start() as Ref<never>;
      const nodes = new Map<string, Ref<NodeMsg>>();
      const nodeIds = Array.from({ length: config.standalone.streamingNodes }, (_, i) => `${config.nodeId}-${i}`);
      const nodeControl: NodeControl = {
        assign: (node, pchannel, term, timeoutMs) => ask<NodeMsg, void>(nodeRef(nodes, node), (replyTo) => ({ type: 'assign', pchannel, term, replyTo }), timeoutMs, `assign ${pchannel}`),
        remove: (node, pchannel, term, timeoutMs) => ask<NodeMsg, void>(nodeRef(nodes, node), (replyTo) => ({ type: 'remove', pchannel, term, replyTo }), timeoutMs, `remove ${pchannel}`),
        status: async (node, timeoutMs) => (await query(nodeRef(nodes, node), (replyTo: Ref<NodeStatus>): NodeMsg => ({ type: 'status', replyTo }), timeoutMs)) as NodeStatus,
      };
      let client: Client | undefined;
      const coordinator = spawnCoordinator(system, {
        pchannels: pchannelNames(config),
        store: new MetaCoordinatorStore(meta),
        nodes: nodeControl,
        router: () => client!.router,
        clock,
        options: { operationTimeoutMs: config.coordinator.operationTimeoutMs, backoffInitialMs: config.coordinator.backoffInitialMs, backoffMaxMs: config.coordinator.backoffMaxMs },
      });
      client = new Client(new InProcessCoordinatorTransport(coordinator), new InProcessNodeTransport((id) => nodes.get(id)), { clock });
      const shared = backend;
      const opts = walOptions(config.wal);
      const tsoSource = oracle;
      for (const nodeId of nodeIds) {
        const ref = spawnStreamingNode(system, {
          nodeId,
          backend: overrides.backendFor ? overrides.backendFor(nodeId, shared) : shared,
          wal: walShared,
          memoryBudget: new MemoryBudget(config.segment.memoryHighWaterBytes, config.segment.memoryLowWaterBytes),
          newTso: () => new TsoAllocator({ source: tsoSource, clock }),
          clock,
          walOptions: opts,
          ...(overrides.restartPolicy ? { restartPolicy: overrides.restartPolicy } : {}),
          onUnavailable: (pchannel, term, error) => dispatch(coordinator, { type: 'reportUnavailable', pchannel, term, nodeId, reason: `${error.code}: ${error.message}` }),
        });
        nodes.set(nodeId, ref);
        dispatch(coordinator, { type: 'nodeUp', nodeId });
      }
      const server = new StandaloneServer(config, client, nodeIds, system, coordinator, nodes, { meta, oracle, backend, objects, flushQueue, flushWorker }, logger);
      await server.waitUntilReady(overrides.readyTimeoutMs ?? 60_000, clock);
      logger.info('walstream standalone ready', { dataDir, nodes: nodeIds, pchannels: config.pchannels.count, walBackend: config.wal.backend });
      return server;
    } catch (e) {
      await flushQueue?.close().catch(() => undefined);
      await flushWorker?.close().catch(() => undefined);
      await objects?.close().catch(() => undefined);
      await oracle?.close().catch(() => undefined);
      await backend?.close().catch(() => undefined);
      await embedded.close().catch(() => undefined);
      throw e;
    }
  }

  /** Resolves once every pchannel is ASSIGNED (its owner answered ready). */
  private async waitUntilReady(timeoutMs: number, clock: Clock): Promise<void> {
    const deadline = clock.monotonic() + timeoutMs;
    const transport = new InProcessCoordinatorTransport(this.coordinator);
    let a = await transport.getAssignment(timeoutMs);
    while (a.channels.some((c) => c.state !== 'ASSIGNED')) {
      const remaining = deadline - clock.monotonic();
      if (remaining <= 0) {
        throw new StreamingError(ErrorCode.UNKNOWN, `pchannels not ready after ${timeoutMs} ms: ${a.channels.filter((c) => c.state !== 'ASSIGNED').map((c) => `${c.name}=${c.state}`).join(', ')}`);
      }
      a = await transport.watchAssignment(a.version, remaining);
    }
  }

  /** The in-process flush queue (standalone runs flush jobs itself). */
  get flushQueue(): InlineFlushQueue {
    return this.resources.flushQueue;
  }

  /** The flush worker behind the queue: its `threads` are the flush threads (undefined: jobs run on the main thread). */
  get flushWorker(): SegmentFlushWorker {
    return this.resources.flushWorker;
  }

  get walBackend(): WalBackend {
    return this.resources.backend;
  }

  get objects(): ObjectStore {
    return this.resources.objects;
  }

  get meta(): MetaStore {
    return this.resources.meta;
  }

  get dataDir(): string {
    return path.resolve(this.config.dataDir);
  }

  /** Stops intake, drains and closes every WAL, persists, releases. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.logger.info('walstream standalone shutting down');
    await this.client.close();
    await ask<CoordinatorMsg, void>(this.coordinator, (replyTo) => ({ type: 'shutdown', replyTo }), 10_000, 'coordinator shutdown').catch((e: unknown) =>
      this.logger.warn('coordinator shutdown failed', { error: String(e) }),
    );
    await Promise.all(
      [...this.nodes.entries()].map(([id, ref]) =>
        ask<NodeMsg, void>(ref, (replyTo) => ({ type: 'shutdown', replyTo }), 15_000, `node ${id} shutdown`).catch((e: unknown) =>
          this.logger.warn('node shutdown failed', { node: id, error: String(e) }),
        ),
      ),
    );
    stop(this.system);
    await this.resources.flushQueue.close().catch(() => undefined);
    await this.resources.flushWorker.close().catch(() => undefined); // ends the flush threads
    await this.resources.objects.close().catch(() => undefined);
    await this.resources.oracle.close().catch(() => undefined);
    await this.resources.backend.close().catch(() => undefined);
    await this.resources.meta.close().catch(() => undefined);
    this.logger.info('walstream standalone stopped');
  }
}

function nodeRef(nodes: Map<string, Ref<NodeMsg>>, node: string): Ref<NodeMsg> {
  const r = nodes.get(node);
  if (!r) throw new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, `no streaming node ${node}`);
  return r;
}

function createBackend(config: WalstreamConfig, clock: Clock): WalBackend {
  switch (config.wal.backend) {
    case 'local':
      return openLocalWalBackend(config, clock);
    case 'memory':
      return new MemoryWalBackend();
    case 'redis':
      throw new StreamingError(ErrorCode.INVALID_ARGUMENT, 'wal.backend=redis runs in cluster mode (walstream coordinator / node), not standalone', { details: { field: 'wal.backend' } });
  }
}
