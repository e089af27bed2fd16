/**
 * The coordinator: the channel state machine of every pchannel, placement on live nodes, the
 * assignment version clients watch, transfers, and the catalog (DDL is broadcast to every
 * vchannel of a collection and completes only when each has it).
 *
 * Assigning pchannel P to node N: persist ASSIGNING at term+1 (the fence), tell every former holder
 * to remove P, tell N to open P at the new term (N answers once recovered), persist ASSIGNED,
 * bump the version. Operations on one pchannel run one at a time; the handler never awaits.
 */
import { dispatch, spawn, type Ref } from 'nact';
import type { Clock } from '../../runtime/clock';
import { ErrorCode, StreamingError, invalidArgument, toStreamingError } from '../../runtime/errors';
import { createLogger, type Logger } from '../../runtime/logger';
import { vchannelName, type Message, pchannelOf } from '../../runtime/message/types';
import { validateSchema } from '../../runtime/message/validate';
import { randomUUID } from 'node:crypto';
import type { ClusterStatus, CollectionInfo, CreateCollectionRequest, FlushResult, PartitionInfo, TransferResult } from '../../runtime/client/api';
import type { Router } from '../../runtime/client/router';
import type { Assignment } from '../../runtime/client/transport';
import type { NodeStatus } from '../streaming-node/messages';
import type { Reply } from '../wal/messages';
import { assignDone, formerHolders, markUnavailable, newPChannel, tryAssign, type PChannelMeta } from './channel-meta';
import type { CoordinatorMsg } from './messages';
import { loadByNode, pickNode, plan } from './placement';
import type { CollectionRecord, CoordinatorStore } from './store';

/** How the coordinator reaches streaming nodes. */
export interface NodeControl {
  assign(node: string, pchannel: string, term: number, timeoutMs: number): Promise<void>;
  remove(node: string, pchannel: string, term: number, timeoutMs: number): Promise<void>;
  status(node: string, timeoutMs: number): Promise<NodeStatus>;
}

export interface CoordinatorOptions {
  /** Longest a node may take to open a pchannel. Default 60000 ms. */
  operationTimeoutMs: number;
  /** Retry backoff of failed assignments. Defaults 50 / 5000 ms. */
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Longest a DDL broadcast keeps retrying. Default 120000 ms. */
  ddlTimeoutMs: number;
  /** Most shards per collection. Default 16. */
  maxShards: number;
  /** How often every live node is asked what it serves (pchannels it gave up are moved). Default 10000 ms. */
  verifyIntervalMs: number;
}

export const DEFAULT_COORDINATOR_OPTIONS: CoordinatorOptions = {
  operationTimeoutMs: 60_000,
  backoffInitialMs: 50,
  backoffMaxMs: 5_000,
  ddlTimeoutMs: 120_000,
  maxShards: 16,
  verifyIntervalMs: 10_000,
};

export interface CoordinatorDeps {
  pchannels: string[];
  store: CoordinatorStore;
  nodes: NodeControl;
  /** Appends DDL to vchannels (routing and retries as a client does); set once the runtime is wired. */
  router: () => Router;
  clock: Clock;
  options?: Partial<CoordinatorOptions>;
  logger?: Logger;
}

const COLLECTION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/;
/** Longest the coordinator waits for a former holder to let a pchannel go. */
const REMOVE_TIMEOUT_MS = 3_000;
/** A pchannel that just moved is not moved again by rebalancing for this long. */
const REBALANCE_SETTLE_MS = 60_000;
const VERSION_EPOCH = 1_000_000;

interface Watcher {
  id: number;
  afterVersion: number;
  replyTo: Ref<Reply<Assignment>>;
  timer: { cancel(): void };
}

class CoordinatorCore {
  private readonly opts: CoordinatorOptions;
  private readonly logger: Logger;
  private loaded = false;
  /** Loaded and the recorded assignments checked against the live nodes. */
  private verified = false;
  private waitingForLoad: CoordinatorMsg[] = [];
  private readonly channels = new Map<string, PChannelMeta>();
  private readonly live = new Set<string>();
  /** pchannel → nodes it was just given up on. */
  private readonly avoid = new Map<string, Set<string>>();
  private version = 0;
  private watchers: Watcher[] = [];
  private watchSeq = 0;
  /** Per-pchannel queue of operations. */
  private readonly ops = new Map<string, Promise<unknown>>();
  private readonly collections = new Map<number, CollectionRecord>();
  /** Per-collection-name queue of DDL. */
  private readonly ddl = new Map<string, Promise<unknown>>();
  private balanceScheduled = false;
  private retryBackoff: number;
  private shuttingDown = false;
  private verifyTimer: { cancel(): void } | undefined;
  private readonly assignedAt = new Map<string, number>();

  constructor(
    private readonly deps: CoordinatorDeps,
    private readonly self: Ref<CoordinatorMsg>,
  ) {
    this.opts = { ...DEFAULT_COORDINATOR_OPTIONS, ...(deps.options ?? {}) };
    this.logger = deps.logger ?? createLogger('coordinator');
    this.retryBackoff = this.opts.backoffInitialMs;
    void this.load();
  }

  private async load(): Promise<void> {
    try {
      const [channels, collections, epoch] = await Promise.all([this.deps.store.loadChannels(), this.deps.store.loadCollections(), this.deps.store.nextId('assignment-epoch')]);
      dispatch(this.self, { type: 'loaded', channels, collections, versionEpoch: epoch });
    } catch (e) {
      dispatch(this.self, { type: 'loadFailed', error: toStreamingError(e) });
    }
  }

  handle(msg: CoordinatorMsg): void {
    if (!this.verified && msg.type !== 'loaded' && msg.type !== 'verified' && msg.type !== 'loadFailed' && msg.type !== 'nodeUp' && msg.type !== 'nodeDown') {
      this.waitingForLoad.push(msg);
      return;
    }
    switch (msg.type) {
      case 'loaded':
        return this.onLoaded(msg.channels, msg.collections, msg.versionEpoch);
      case 'verified': {
        this.verified = true;
        this.verifyTimer = this.deps.clock.setInterval(() => {
          if (!this.shuttingDown) for (const n of this.live) void this.verifyNode(n);
        }, this.opts.verifyIntervalMs);
        this.scheduleBalance();
        const waiting = this.waitingForLoad;
        this.waitingForLoad = [];
        for (const m of waiting) this.handle(m);
        return;
      }
      case 'loadFailed':
        this.logger.error('coordinator could not load its state; retrying', { error: msg.error.message });
        this.deps.clock.setTimeout(() => void this.load(), 1000);
        return;
      case 'nodeUp':
        if (!this.live.has(msg.nodeId)) {
          this.live.add(msg.nodeId);
          this.logger.info('streaming node up', { node: msg.nodeId });
          if (this.loaded) {
            this.bumpVersion();
            void this.verifyNode(msg.nodeId);
          }
        }
        return;
      case 'nodeDown':
        return this.onNodeDown(msg.nodeId);
      case 'reportUnavailable':
        return this.onUnavailable(msg.pchannel, msg.term, msg.nodeId, msg.reason);
      case 'getAssignment':
        dispatch(msg.replyTo, { ok: true, value: this.assignment() });
        return;
      case 'watchAssignment':
        return this.onWatch(msg.afterVersion, msg.timeoutMs, msg.replyTo);
      case 'watchTimeout': {
        const w = this.watchers.find((x) => x.id === msg.watchId);
        if (w) {
          this.watchers = this.watchers.filter((x) => x !== w);
          dispatch(w.replyTo, { ok: true, value: this.assignment() });
        }
        return;
      }
      case 'transfer':
        return reply(msg.replyTo, this.transfer(msg.pchannel, msg.toNode));
      case 'createCollection':
        return reply(msg.replyTo, this.createCollection(msg.req));
      case 'dropCollection':
        return reply(msg.replyTo, this.dropCollection(msg.name));
      case 'createPartition':
        return reply(msg.replyTo, this.createPartition(msg.collection, msg.partition));
      case 'dropPartition':
        return reply(msg.replyTo, this.dropPartition(msg.collection, msg.partition));
      case 'describeCollection':
        return reply(msg.replyTo, Promise.resolve().then(() => publicInfo(this.collectionByName(msg.name))));
      case 'flushCollection':
        return reply(msg.replyTo, this.flushCollection(msg.name));
      case 'listCollections':
        dispatch(msg.replyTo, { ok: true, value: [...this.collections.values()].filter((c) => c.state !== 'dropped').map(publicInfo) });
        return;
      case 'status':
        return reply(msg.replyTo, this.status());
      case 'shutdown':
        this.shuttingDown = true;
        this.verifyTimer?.cancel();
        for (const w of this.watchers) {
          w.timer.cancel();
          dispatch(w.replyTo, { ok: true, value: this.assignment() });
        }
        this.watchers = [];
        dispatch(msg.replyTo, { ok: true, value: undefined });
        return;
    }
  }

  // ------------------------------------------------------------------ load and balance

  private onLoaded(channels: PChannelMeta[], collections: CollectionRecord[], epoch: number): void {
    this.loaded = true;
    this.version = epoch * VERSION_EPOCH;
    for (const c of channels) this.channels.set(c.name, c);
    for (const c of collections) this.collections.set(c.id, c);
    const fresh = this.deps.pchannels.filter((p) => !this.channels.has(p));
    for (const p of fresh) this.channels.set(p, newPChannel(p));
    this.logger.info('coordinator loaded', { pchannels: this.channels.size, new: fresh.length, collections: this.collections.size, liveNodes: this.live.size });
    void Promise.all(fresh.map((p) => this.deps.store.saveChannel(this.channels.get(p)!))).catch((e: unknown) =>
      this.logger.error('persisting new pchannels failed', { error: toStreamingError(e).message }),
    );
    // Resume DDL that a previous coordinator left half done.
    for (const c of this.collections.values()) {
      if (c.state === 'creating') void this.serialDdl(c.name, () => this.finishCreate(c)).catch(() => undefined);
      if (c.state === 'dropping') void this.serialDdl(c.name, () => this.finishDrop(c)).catch(() => undefined);
    }
    this.bumpVersion();
    // What the store says was ASSIGNED may not be served any more (a restarted node): ask the live
    // nodes before answering anyone.
    void Promise.all([...this.live].map((n) => this.verifyNode(n))).finally(() => dispatch(this.self, { type: 'verified' }));
  }

  /**
   * Checks that a live node serves what the store says it was assigned; a pchannel it does not
   * serve at that term (the node restarted, or the coordinator did) becomes UNAVAILABLE and moves.
   */
  private async verifyNode(node: string): Promise<void> {
    let served: Set<string>;
    try {
      const st = await this.deps.nodes.status(node, this.opts.operationTimeoutMs);
      served = new Set(st.wals.filter((w) => w.state !== 'unavailable').map((w) => `${w.pchannel}@${w.term}`));
    } catch (e) {
      this.logger.warn('could not verify a node; its pchannels are moved', { node, error: toStreamingError(e).message });
      served = new Set();
    }
    for (const meta of this.channels.values()) {
      if (meta.node !== node || meta.state !== 'ASSIGNED' || this.ops.has(meta.name)) continue;
      if (served.has(`${meta.name}@${meta.term}`)) continue;
      this.logger.info('pchannel not served by its recorded owner; reassigning', { pchannel: meta.name, node, term: meta.term });
      const next = markUnavailable(meta, meta.term);
      await this.serial(meta.name, () => this.persist(next)).catch((e: unknown) =>
        this.logger.error('persisting unavailability failed', { pchannel: meta.name, error: toStreamingError(e).message }),
      );
    }
    this.scheduleBalance();
  }

  private scheduleBalance(delayMs = 0): void {
    if (this.balanceScheduled || this.shuttingDown) return;
    this.balanceScheduled = true;
    this.deps.clock.setTimeout(() => {
      this.balanceScheduled = false;
      this.balance();
    }, delayMs);
  }

  /** Places every pchannel that has no live owner (and resumes interrupted assignments). */
  private balance(): void {
    if (!this.loaded || this.shuttingDown) return;
    const channels = [...this.channels.values()];
    // An assignment left ASSIGNING by a previous coordinator is resumed towards the same node when it is alive.
    for (const c of channels) {
      if (c.state === 'ASSIGNING' && c.node !== undefined && this.live.has(c.node) && !this.ops.has(c.name)) {
        void this.serial(c.name, () => this.completeAssign(c.name, c.term)).catch(() => undefined);
      }
    }
    const moves = plan(
      channels.filter((c) => !this.ops.has(c.name)),
      [...this.live],
      this.avoid,
      this.ops.size === 0,
      this.settling(),
    );
    for (const [pchannel, node] of moves) {
      void this.serial(pchannel, () => this.assign(pchannel, node)).catch((e: unknown) => {
        this.logger.warn('assignment failed; will retry', { pchannel, node, error: toStreamingError(e).message, backoffMs: this.retryBackoff });
        this.scheduleBalance(this.retryBackoff);
        this.retryBackoff = Math.min(this.opts.backoffMaxMs, this.retryBackoff * 2);
      });
    }
  }

  private serial<T>(pchannel: string, op: () => Promise<T>): Promise<T> {
    return enqueue(this.ops, pchannel, op);
  }

  private async persist(meta: PChannelMeta): Promise<void> {
    if (this.shuttingDown) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'coordinator is shutting down');
    await this.deps.store.saveChannel(meta);
    this.channels.set(meta.name, meta);
    this.bumpVersion();
  }

  /** The whole assignment of one pchannel to one node. Returns the new term. */
  private async assign(pchannel: string, node: string): Promise<number> {
    const meta = this.channels.get(pchannel);
    if (!meta) throw new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, `no pchannel ${pchannel}`);
    const next = tryAssign(meta, node);
    if (next === meta) return meta.term;
    await this.persist(next);
    this.logger.info('assigning pchannel', { pchannel, node, term: next.term, from: meta.node });
    return this.completeAssign(pchannel, next.term);
  }

  private async completeAssign(pchannel: string, term: number): Promise<number> {
    const meta = this.channels.get(pchannel)!;
    if (meta.state !== 'ASSIGNING' || meta.term !== term || meta.node === undefined) return meta.term;
    const node = meta.node;
    const t0 = this.deps.clock.monotonic();
    // Former holders let go first (a dead one cannot be told; the storage fence stops it anyway).
    await Promise.all(
      formerHolders(meta).map(async (h) => {
        if (!this.live.has(h.node)) return;
        try {
          // A holder that does not answer soon is dead or paused: the term bump already fences it.
          await this.deps.nodes.remove(h.node, pchannel, h.term, Math.min(this.opts.operationTimeoutMs, REMOVE_TIMEOUT_MS));
        } catch (e) {
          this.logger.warn('former holder did not remove the pchannel', { pchannel, node: h.node, term: h.term, error: toStreamingError(e).message });
        }
      }),
    );
    const t1 = this.deps.clock.monotonic();
    try {
      await this.deps.nodes.assign(node, pchannel, term, this.opts.operationTimeoutMs);
    } catch (e) {
      const err = toStreamingError(e);
      const cur = this.channels.get(pchannel)!;
      if (cur.term === term) {
        this.addAvoid(pchannel, node);
        await this.persist(markUnavailable(cur, term));
      }
      throw err;
    }
    const cur = this.channels.get(pchannel)!;
    const done = assignDone(cur, term);
    if (done !== cur) await this.persist(done);
    this.retryBackoff = this.opts.backoffInitialMs;
    const t2 = this.deps.clock.monotonic();
    this.logger.info('pchannel assigned', { pchannel, node, term, removeMs: Math.round(t1 - t0), openMs: Math.round(t2 - t1), persistMs: Math.round(this.deps.clock.monotonic() - t2) });
    return term;
  }

  /** pchannels assigned less than a minute ago: rebalancing leaves them where they are. */
  private settling(): Set<string> {
    const now = this.deps.clock.monotonic();
    return new Set([...this.assignedAt.entries()].filter(([, at]) => now - at < REBALANCE_SETTLE_MS).map(([p]) => p));
  }

  private addAvoid(pchannel: string, node: string): void {
    let s = this.avoid.get(pchannel);
    if (!s) this.avoid.set(pchannel, (s = new Set()));
    s.add(node);
    // Forget after a while: a recovered node may take it again.
    this.deps.clock.setTimeout(() => s.delete(node), 60_000);
  }

  private onUnavailable(pchannel: string, term: number, nodeId: string, reason: string): void {
    const meta = this.channels.get(pchannel);
    if (!meta) return;
    const next = markUnavailable(meta, term);
    if (next === meta) {
      this.logger.debug('stale unavailability report ignored', { pchannel, term, current: meta.term });
      return;
    }
    this.logger.warn('pchannel reported unavailable; moving it', { pchannel, term, node: nodeId, reason });
    this.addAvoid(pchannel, nodeId);
    void this.serial(pchannel, () => this.persist(next))
      .then(() => this.scheduleBalance())
      .catch((e: unknown) => this.logger.error('persisting unavailability failed', { pchannel, error: toStreamingError(e).message }));
  }

  private onNodeDown(nodeId: string): void {
    if (!this.live.delete(nodeId)) return;
    this.logger.warn('streaming node down; moving its pchannels', { node: nodeId });
    for (const meta of this.channels.values()) {
      if (meta.node === nodeId && (meta.state === 'ASSIGNED' || meta.state === 'ASSIGNING')) {
        const next = markUnavailable(meta, meta.term);
        void this.serial(meta.name, () => this.persist(next)).catch(() => undefined);
      }
    }
    this.bumpVersion();
    this.scheduleBalance();
  }

  private async transfer(pchannel: string, toNode: string | undefined): Promise<TransferResult> {
    const meta = this.channels.get(pchannel);
    if (!meta) throw invalidArgument(`no pchannel named ${pchannel}`, { field: 'pchannel' });
    let target = toNode;
    if (target === undefined) {
      const load = loadByNode([...this.channels.values()], [...this.live]);
      if (meta.node !== undefined) load.delete(meta.node);
      target = pickNode(load);
      if (target === undefined) throw new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, `no other live node to move ${pchannel} to`);
    } else if (!this.live.has(target)) {
      throw invalidArgument(`node ${target} is not a live streaming node`, { field: 'toNode', liveNodes: [...this.live] });
    }
    const from = meta.node;
    const t0 = this.deps.clock.monotonic();
    const term = await this.serial(pchannel, () => this.assign(pchannel, target));
    return { pchannel, from, to: target, term, tookMs: this.deps.clock.monotonic() - t0 };
  }

  // ------------------------------------------------------------------ assignment and watchers

  private assignment(): Assignment {
    return {
      version: this.version,
      nodes: [...this.live].sort(),
      channels: [...this.channels.values()].map((c) => ({ name: c.name, term: c.term, node: c.node, state: c.state })),
    };
  }

  private bumpVersion(): void {
    this.version++;
    if (this.watchers.length === 0) return;
    const a = this.assignment();
    const ready = this.watchers.filter((w) => w.afterVersion < a.version);
    this.watchers = this.watchers.filter((w) => w.afterVersion >= a.version);
    for (const w of ready) {
      w.timer.cancel();
      dispatch(w.replyTo, { ok: true, value: a });
    }
  }

  private onWatch(afterVersion: number, timeoutMs: number, replyTo: Ref<Reply<Assignment>>): void {
    if (afterVersion < this.version || this.shuttingDown) {
      dispatch(replyTo, { ok: true, value: this.assignment() });
      return;
    }
    const id = ++this.watchSeq;
    const timer = this.deps.clock.setTimeout(() => dispatch(this.self, { type: 'watchTimeout', watchId: id }), Math.max(1, timeoutMs));
    this.watchers.push({ id, afterVersion, replyTo, timer });
  }

  private async status(): Promise<ClusterStatus> {
    const nodes = [...this.live].sort();
    const statuses = await Promise.all(nodes.map((n) => this.deps.nodes.status(n, 5_000).catch(() => undefined)));
    const walByPchannel = new Map<string, { lastTimetick?: string; writeAheadBuffer?: { entries: number; bytes: number }; subscribers?: number; term: number }>();
    statuses.forEach((s) => s?.wals.forEach((w) => walByPchannel.set(w.pchannel, w as never)));
    return {
      assignmentVersion: this.version,
      nodes: nodes.map((id, i) => ({
        id,
        state: statuses[i] ? ('alive' as const) : ('unavailable' as const),
        pchannels: [...this.channels.values()].filter((c) => c.node === id && c.state === 'ASSIGNED').map((c) => c.name).sort(),
      })),
      pchannels: [...this.channels.values()]
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .map((c) => {
          const w = c.node !== undefined ? walByPchannel.get(c.name) : undefined;
          return {
            name: c.name,
            node: c.node,
            term: c.term,
            state: c.state,
            ...(w && w.term === c.term && w.lastTimetick !== undefined
              ? { lastTimetick: w.lastTimetick, writeAheadBufferBytes: w.writeAheadBuffer?.bytes ?? 0, writeAheadBufferEntries: w.writeAheadBuffer?.entries ?? 0, subscribers: w.subscribers ?? 0 }
              : {}),
          };
        }),
    };
  }

  // ------------------------------------------------------------------ catalog and DDL

  private serialDdl<T>(name: string, op: () => Promise<T>): Promise<T> {
    return enqueue(this.ddl, name, op);
  }

  private collectionByName(name: string): CollectionRecord {
    for (const c of this.collections.values()) if (c.name === name && c.state !== 'dropped') return c;
    throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `collection ${JSON.stringify(name)} does not exist`, { details: { field: 'collection', reason: 'not found' } });
  }

  private async broadcast(c: CollectionRecord, make: (vchannel: string) => Message | Omit<Message, 'timetick' | 'lastConfirmedId' | 'term'>, tag: string): Promise<void> {
    const router = this.deps.router();
    const deadline = this.deps.clock.monotonic() + this.opts.ddlTimeoutMs;
    await Promise.all(c.vchannels.map((v) => router.append({ ...make(v), idempotencyKey: `ddl:${tag}:${c.id}:${v}` } as Message, deadline)));
  }

  private createCollection(req: CreateCollectionRequest): Promise<CollectionInfo> {
    if (typeof req.name !== 'string' || !COLLECTION_NAME.test(req.name)) {
      return Promise.reject(invalidArgument(`collection name must match ${COLLECTION_NAME.source}`, { field: 'name', reason: 'invalid name' }));
    }
    return this.serialDdl(req.name, async () => {
      for (const c of this.collections.values()) {
        if (c.name === req.name && c.state !== 'dropped') throw invalidArgument(`collection ${JSON.stringify(req.name)} already exists`, { field: 'name', reason: 'exists' });
      }
      validateSchema(req.schema);
      const shards = req.shards ?? 1;
      if (!Number.isInteger(shards) || shards < 1 || shards > this.opts.maxShards) {
        throw invalidArgument(`shards must be an integer in [1, ${this.opts.maxShards}]`, { field: 'shards', reason: 'out of range' });
      }
      const id = await this.deps.store.nextId('collection');
      const defaultPartition = await this.deps.store.nextId('partition');
      const pchannels = this.pickPChannels(shards);
      const record: CollectionRecord = {
        id,
        name: req.name,
        schema: req.schema,
        vchannels: pchannels.map((p, i) => vchannelName(p, id, i)),
        partitions: [{ id: defaultPartition, name: '_default', state: 'normal' }],
        state: 'creating',
      };
      await this.deps.store.saveCollection(record);
      this.collections.set(id, record);
      this.logger.info('creating collection', { name: req.name, id, vchannels: record.vchannels });
      await this.finishCreate(record);
      return publicInfo(record);
    });
  }

  private async finishCreate(record: CollectionRecord): Promise<void> {
    const partitions = record.partitions.filter((p) => p.state === 'normal');
    await this.broadcast(
      record,
      (vchannel) => ({
        type: 'CreateCollection',
        vchannel,
        header: { collectionId: record.id, partitionIds: partitions.map((p) => p.id) },
        body: { collectionName: record.name, schema: record.schema, partitions: partitions.map((p) => ({ id: p.id, name: p.name })) },
      }),
      'create',
    );
    record.state = 'normal';
    await this.deps.store.saveCollection(record);
    this.logger.info('collection created', { name: record.name, id: record.id });
  }

  /** Spreads shards over the pchannels carrying the fewest vchannels. */
  private pickPChannels(shards: number): string[] {
    const load = new Map<string, number>([...this.channels.keys()].sort().map((p) => [p, 0]));
    for (const c of this.collections.values()) {
      if (c.state === 'dropped') continue;
      for (const v of c.vchannels) {
        const p = pchannelOf(v);
        if (load.has(p)) load.set(p, load.get(p)! + 1);
      }
    }
    const out: string[] = [];
    for (let i = 0; i < shards; i++) {
      const [p] = [...load.entries()].reduce((best, cur) => (cur[1] < best[1] ? cur : best));
      out.push(p);
      load.set(p, load.get(p)! + 1);
    }
    return out;
  }

  private dropCollection(name: string): Promise<void> {
    return this.serialDdl(name, async () => {
      const c = this.collectionByName(name);
      c.state = 'dropping';
      await this.deps.store.saveCollection(c);
      await this.finishDrop(c);
    });
  }

  private async finishDrop(c: CollectionRecord): Promise<void> {
    await this.broadcast(c, (vchannel) => ({ type: 'DropCollection', vchannel, header: { collectionId: c.id }, body: {} }), 'drop');
    c.state = 'dropped';
    await this.deps.store.saveCollection(c);
    this.logger.info('collection dropped', { name: c.name, id: c.id });
  }

  private flushCollection(name: string): Promise<FlushResult> {
    return this.serialDdl(name, async () => {
      const c = this.collectionByName(name);
      const router = this.deps.router();
      const deadline = this.deps.clock.monotonic() + this.opts.ddlTimeoutMs;
      const tag = randomUUID();
      const segments = await Promise.all(
        c.vchannels.map(async (vchannel) => {
          const r = await router.append(
            { type: 'ManualFlush', vchannel, idempotencyKey: `ddl:flush:${tag}:${vchannel}`, header: { collectionId: c.id, flushTs: 0n, segmentIds: [] }, body: {} },
            deadline,
          );
          return { vchannel, segmentIds: r.extra?.segmentIds ?? [] };
        }),
      );
      this.logger.info('collection flushed', { name, segments });
      return { collection: name, segments };
    });
  }

  private createPartition(collection: string, partition: string): Promise<PartitionInfo> {
    if (typeof partition !== 'string' || !COLLECTION_NAME.test(partition)) {
      return Promise.reject(invalidArgument(`partition name must match ${COLLECTION_NAME.source}`, { field: 'partition', reason: 'invalid name' }));
    }
    return this.serialDdl(collection, async () => {
      const c = this.collectionByName(collection);
      if (c.partitions.some((p) => p.name === partition && p.state === 'normal')) {
        throw invalidArgument(`partition ${JSON.stringify(partition)} already exists in ${collection}`, { field: 'partition', reason: 'exists' });
      }
      const id = await this.deps.store.nextId('partition');
      await this.broadcast(c, (vchannel) => ({ type: 'CreatePartition', vchannel, header: { collectionId: c.id, partitionId: id }, body: { partitionName: partition } }), `cp${id}`);
      c.partitions.push({ id, name: partition, state: 'normal' });
      await this.deps.store.saveCollection(c);
      return { id, name: partition };
    });
  }

  private dropPartition(collection: string, partition: string): Promise<void> {
    return this.serialDdl(collection, async () => {
      const c = this.collectionByName(collection);
      const p = c.partitions.find((x) => x.name === partition && x.state === 'normal');
      if (!p) throw invalidArgument(`partition ${JSON.stringify(partition)} does not exist in ${collection}`, { field: 'partition', reason: 'not found' });
      if (p.name === '_default') throw invalidArgument('the _default partition cannot be dropped', { field: 'partition', reason: 'default partition' });
      await this.broadcast(c, (vchannel) => ({ type: 'DropPartition', vchannel, header: { collectionId: c.id, partitionId: p.id }, body: {} }), `dp${p.id}`);
      p.state = 'dropped';
      await this.deps.store.saveCollection(c);
    });
  }
}

/** Runs `op` after every operation queued under `key`; the queue entry never rejects (callers get the outcome). */
function enqueue<T>(queues: Map<string, Promise<unknown>>, key: string, op: () => Promise<T>): Promise<T> {
  const prev = queues.get(key) ?? Promise.resolve();
  const next = prev.then(op);
  const settled: Promise<unknown> = next.then(
    () => undefined,
    () => undefined,
  );
  const tracked = settled.then(() => {
    if (queues.get(key) === tracked) queues.delete(key);
  });
  queues.set(key, tracked);
  return next;
}

function publicInfo(c: CollectionRecord): CollectionInfo {
  return {
    id: c.id,
    name: c.name,
    schema: c.schema,
    vchannels: [...c.vchannels],
    partitions: c.partitions.filter((p) => p.state === 'normal').map((p) => ({ id: p.id, name: p.name })),
    state: c.state,
  };
}

function reply<T>(replyTo: Ref<Reply<T>>, p: Promise<T>): void {
  p.then(
    (value) => dispatch(replyTo, { ok: true, value }),
    (e: unknown) => dispatch(replyTo, { ok: false, error: toStreamingError(e) }),
  );
}

export function spawnCoordinator(parent: Ref<unknown>, deps: CoordinatorDeps): Ref<CoordinatorMsg> {
  return spawn(
    parent as Ref<never>,
    (core: CoordinatorCore, msg: CoordinatorMsg) => {
      core.handle(msg);
      return core;
    },
    'coordinator',
    { initialStateFunc: (ctx) => new CoordinatorCore(deps, ctx.self as Ref<CoordinatorMsg>) },
  );
}
