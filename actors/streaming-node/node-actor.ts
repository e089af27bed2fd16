/**
 * A streaming node: supervises one WAL actor per pchannel it owns. The coordinator assigns a
 * pchannel at a term (the node opens the WAL and answers once it is ready — first TimeTick written,
 * state replayed) and removes it; operations are ordered by term and stale ones are ignored.
 * Appends and subscriptions are checked against the owned term and forwarded to the WAL actor,
 * which answers the caller directly. A WAL that crashes is reopened with backoff; one that keeps
 * crashing, or is fenced, is given up and reported so the coordinator moves it.
 */
import { dispatch, query, spawn, stop, type Ref } from 'nact';
import type { Clock } from '../../runtime/clock';
import { ErrorCode, isFenced, StreamingError, toStreamingError } from '../../runtime/errors';
import { createLogger, type Logger } from '../../runtime/logger';
import { CrashWindow, decide, DEFAULT_RESTART_POLICY, type RestartPolicy } from '../../runtime/supervision';
import type { WalBackend } from '../../storage/wal/backend';
import type { Reply, WalMsg, WalStatus } from '../wal/messages';
import type { WalOptions } from '../wal/options';
import { spawnWal, type WalDeps, type WalTso } from '../wal/wal-actor';
import type { MemoryBudget } from '../wal/segments';
import type { NodeMsg, NodeStatus } from './messages';

/** What every WAL of the node shares besides its backend and TSO. */
export type NodeWalDeps = Pick<WalDeps, 'meta' | 'flushQueue' | 'writeBuffer' | 'segmentIds' | 'segmentLimits' | 'recovery' | 'onReplayProgress'>;

export interface StreamingNodeDeps {
  nodeId: string;
  backend: WalBackend;
  wal: NodeWalDeps;
  /** Growing-segment memory of the node: above high water the largest segments are sealed. */
  memoryBudget: MemoryBudget;
  /** One timestamp allocator per WAL (each keeps its own local batch). */
  newTso(): WalTso;
  clock: Clock;
  walOptions: WalOptions;
  restartPolicy?: RestartPolicy;
  /** Called when the node gives a pchannel up (fenced, or crash-looping): the coordinator should move it. */
  onUnavailable(pchannel: string, term: number, error: StreamingError): void;
  logger?: Logger;
}

interface OwnedWal {
  term: number;
  /** When the assign arrived (monotonic ms). */
  since: number;
  ref: Ref<WalMsg>;
  state: 'opening' | 'ready' | 'unavailable';
  readyWaiters: Ref<Reply<void>>[];
  crashes: CrashWindow;
}

const WAL_CALL_TIMEOUT_MS = 60_000;

class NodeCore {
  private readonly wals = new Map<string, OwnedWal>();
  /** Highest term seen per pchannel, also after removal: older operations are stale. */
  private readonly highestTerm = new Map<string, number>();
  private readonly logger: Logger;
  private shuttingDown = false;

  constructor(
    private readonly deps: StreamingNodeDeps,
    private readonly self: Ref<NodeMsg>,
  ) {
    this.logger = deps.logger ?? createLogger(`node.${deps.nodeId}`);
  }

  handle(msg: NodeMsg): void {
    switch (msg.type) {
      case 'assign':
        return this.onAssign(msg.pchannel, msg.term, msg.replyTo);
      case 'remove':
        return this.onRemove(msg.pchannel, msg.term, msg.replyTo);
      case 'append': {
        const w = this.route(msg.pchannel, msg.term, msg.replyTo);
        if (w) dispatch(w.ref, { type: 'append', message: msg.message, replyTo: msg.replyTo });
        return;
      }
      case 'subscribe': {
        const w = this.route(msg.pchannel, msg.term, msg.replyTo);
        if (w) dispatch(w.ref, { type: 'subscribe', options: msg.options, replyTo: msg.replyTo });
        return;
      }
      case 'status':
        void this.status().then((s) => dispatch(msg.replyTo, s));
        return;
      case 'shutdown':
        return this.onShutdown(msg.replyTo);
      case 'dropAll': {
        const all = [...this.wals.entries()];
        this.wals.clear();
        this.logger.warn('dropping every WAL', { wals: all.map(([p, w]) => `${p}@${w.term}`) });
        Promise.all(all.map(([p, w]) => this.closeWal(p, w))).then(
          () => dispatch(msg.replyTo, { ok: true, value: undefined }),
          (e: unknown) => dispatch(msg.replyTo, { ok: false, error: toStreamingError(e) }),
        );
        return;
      }
      case 'walReady':
        return this.onWalReady(msg.pchannel, msg.term, msg.error);
      case 'walGaveUp':
        return this.onGaveUp(msg.pchannel, msg.term, msg.error);
      case 'walClosed':
        return;
    }
  }

  private stale(pchannel: string, term: number): boolean {
    return term < (this.highestTerm.get(pchannel) ?? 0);
  }

  private route<T>(pchannel: string, term: number, replyTo: Ref<Reply<T>>): OwnedWal | undefined {
    const w = this.wals.get(pchannel);
    if (!w || w.state === 'unavailable' || this.shuttingDown) {
      dispatch(replyTo, { ok: false, error: new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, `pchannel ${pchannel} is not served by node ${this.deps.nodeId}`, { details: { pchannel, node: this.deps.nodeId } }) });
      return undefined;
    }
    if (w.term !== term) {
      dispatch(replyTo, {
        ok: false,
        error: new StreamingError(ErrorCode.UNMATCHED_CHANNEL_TERM, `pchannel ${pchannel} is at term ${w.term} on node ${this.deps.nodeId}, not ${term}`, {
          details: { pchannel, term: w.term, requested: term },
        }),
      });
      return undefined;
    }
    return w;
  }

  private onAssign(pchannel: string, term: number, replyTo: Ref<Reply<void>>): void {
    if (this.shuttingDown) {
      dispatch(replyTo, { ok: false, error: new StreamingError(ErrorCode.ON_SHUTDOWN, `node ${this.deps.nodeId} is shutting down`) });
      return;
    }
    if (this.stale(pchannel, term)) {
      dispatch(replyTo, { ok: false, error: new StreamingError(ErrorCode.IGNORED_OPERATION, `assign ${pchannel} at stale term ${term}`, { details: { pchannel, term } }) });
      return;
    }
    const existing = this.wals.get(pchannel);
    if (existing && existing.term === term && existing.state !== 'unavailable') {
      if (existing.state === 'ready') dispatch(replyTo, { ok: true, value: undefined });
      else existing.readyWaiters.push(replyTo);
      return;
    }
    if (existing) this.closeWal(pchannel, existing);
    this.highestTerm.set(pchannel, term);
    const crashes = new CrashWindow(this.deps.restartPolicy ?? DEFAULT_RESTART_POLICY);
    const ref = spawnWal(
      this.self,
      {
        ...this.deps.wal,
        channel: { name: pchannel, term, accessMode: 'rw' },
        backend: this.deps.backend,
        tso: this.deps.newTso(),
        clock: this.deps.clock,
        options: this.deps.walOptions,
        memoryBudget: this.deps.memoryBudget,
        logger: this.logger,
      },
      {
        name: `wal-${pchannel}-t${term}`,
        onCrash: async (error, verdicts) => {
          const err = toStreamingError(error);
          const verdict = decide(error);
          if (verdict === 'reset') {
            const backoff = crashes.record(this.deps.clock.monotonic());
            if (backoff !== undefined) {
              this.logger.warn('wal crashed; reopening', { pchannel, term, restarts: crashes.count, backoffMs: backoff, error: err.message });
              await this.deps.clock.sleep(backoff);
              return verdicts.reset;
            }
            this.logger.error('wal keeps crashing; giving the pchannel up', { pchannel, term, restarts: crashes.count, error: err.message });
          } else {
            this.logger.error('wal stopped', { pchannel, term, verdict, code: err.code, error: err.message });
          }
          dispatch(this.self, { type: 'walGaveUp', pchannel, term, error: err });
          return verdicts.stop;
        },
      },
    );
    const w: OwnedWal = { term, since: this.deps.clock.monotonic(), ref, state: 'opening', readyWaiters: [replyTo], crashes };
    this.wals.set(pchannel, w);
    this.awaitOpen(pchannel, w);
  }

  private awaitOpen(pchannel: string, w: OwnedWal): void {
    const term = w.term;
    query(w.ref, (r: Ref<Reply<WalStatus>>): WalMsg => ({ type: 'awaitOpen', replyTo: r }), WAL_CALL_TIMEOUT_MS).then(
      (reply: Reply<WalStatus>) => dispatch(this.self, { type: 'walReady', pchannel, term, ...(reply.ok ? {} : { error: reply.error }) }),
      (e: unknown) => dispatch(this.self, { type: 'walReady', pchannel, term, error: toStreamingError(e) }),
    );
  }

  private onWalReady(pchannel: string, term: number, error: StreamingError | undefined): void {
    const w = this.wals.get(pchannel);
    if (!w || w.term !== term) return;
    if (error) {
      if (isFenced(error) || !error.retriable) {
        this.onGaveUp(pchannel, term, error);
        return;
      }
      // A retriable failure: the supervisor reopens the WAL; wait for that incarnation.
      this.awaitOpen(pchannel, w);
      return;
    }
    const waiters = w.readyWaiters;
    w.readyWaiters = [];
    w.state = 'ready';
    this.logger.info('pchannel ready', { pchannel, term, openMs: Math.round(this.deps.clock.monotonic() - w.since) });
    for (const r of waiters) dispatch(r, { ok: true, value: undefined });
  }

  private onGaveUp(pchannel: string, term: number, error: StreamingError): void {
    const w = this.wals.get(pchannel);
    if (!w || w.term !== term) return;
    w.state = 'unavailable';
    for (const r of w.readyWaiters) dispatch(r, { ok: false, error });
    w.readyWaiters = [];
    this.wals.delete(pchannel);
    stop(w.ref);
    this.deps.onUnavailable(pchannel, term, error);
  }

  private onRemove(pchannel: string, term: number, replyTo: Ref<Reply<void>>): void {
    if (this.stale(pchannel, term)) {
      dispatch(replyTo, { ok: false, error: new StreamingError(ErrorCode.IGNORED_OPERATION, `remove ${pchannel} at stale term ${term}`, { details: { pchannel, term } }) });
      return;
    }
    this.highestTerm.set(pchannel, term);
    const w = this.wals.get(pchannel);
    if (!w) {
      dispatch(replyTo, { ok: true, value: undefined });
      return;
    }
    this.wals.delete(pchannel);
    this.closeWal(pchannel, w).then(
      () => dispatch(replyTo, { ok: true, value: undefined }),
      (e: unknown) => dispatch(replyTo, { ok: false, error: toStreamingError(e) }),
    );
  }

  /** Closes a WAL (drains in-flight writes) and stops its actor. */
  private async closeWal(pchannel: string, w: OwnedWal): Promise<void> {
    for (const r of w.readyWaiters) dispatch(r, { ok: false, error: new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, `pchannel ${pchannel} was removed from node ${this.deps.nodeId}`) });
    w.readyWaiters = [];
    try {
      const reply = (await query(w.ref, (r: Ref<Reply<void>>): WalMsg => ({ type: 'close', replyTo: r }), WAL_CALL_TIMEOUT_MS)) as Reply<void>;
      if (!reply.ok) this.logger.warn('wal close reported an error', { pchannel, term: w.term, error: reply.error.message });
    } catch (e) {
      this.logger.warn('wal close did not answer', { pchannel, term: w.term, error: toStreamingError(e).message });
    } finally {
      stop(w.ref);
      dispatch(this.self, { type: 'walClosed', pchannel, term: w.term });
    }
  }

  private async status(): Promise<NodeStatus> {
    const wals = await Promise.all(
      [...this.wals.entries()].map(async ([pchannel, w]) => {
        if (w.state !== 'ready') return { pchannel, term: w.term, state: w.state === 'opening' ? ('opening' as const) : ('unavailable' as const) };
        try {
          return (await query(w.ref, (r: Ref<WalStatus>): WalMsg => ({ type: 'status', replyTo: r }), 5_000)) as WalStatus;
        } catch {
          return { pchannel, term: w.term, state: 'unavailable' as const };
        }
      }),
    );
    return { nodeId: this.deps.nodeId, wals };
  }

  private onShutdown(replyTo: Ref<Reply<void>>): void {
    this.shuttingDown = true;
    const all = [...this.wals.entries()];
    this.wals.clear();
    Promise.all(all.map(([p, w]) => this.closeWal(p, w))).then(
      () => dispatch(replyTo, { ok: true, value: undefined }),
      (e: unknown) => dispatch(replyTo, { ok: false, error: toStreamingError(e) }),
    );
  }
}

export function spawnStreamingNode(parent: Ref<unknown>, deps: StreamingNodeDeps): Ref<NodeMsg> {
  return spawn(
    parent as Ref<never>,
    (core: NodeCore, msg: NodeMsg) => {
      core.handle(msg);
      return core;
    },
    `node-${deps.nodeId}`,
    { initialStateFunc: (ctx) => new NodeCore(deps, ctx.self as Ref<NodeMsg>) },
  );
}
