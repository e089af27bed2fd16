/**
 * Node liveness in cluster mode. A streaming node registers `cluster/nodes/<id>` on a lease and
 * renews it at ≤ 1/3 of its TTL. If it cannot renew in time it self-fences at once — stops every
 * WAL, without waiting for the TTL — and then registers again as a fresh member. The coordinator
 * watches the prefix: a key that appears is a node up, one that vanishes (lease expired) a node down.
 */
import type { Clock, TimerHandle } from '../../clock';
import { toStreamingError } from '../../errors';
import type { Logger } from '../../logger';
import type { Lease, MetaStore, Unsubscribe } from '../../../storage/meta/meta-store';

export const NODES_PREFIX = 'cluster/nodes/';

export interface NodeRegistration {
  nodeId: string;
  /** Mailbox address of the node. */
  address: string;
  startedAt: number;
  pid: number;
}

export interface MembershipOptions {
  ttlMs: number;
  renewIntervalMs: number;
  clock: Clock;
  logger: Logger;
  /** The lease is lost (or could not be renewed in time): stop serving at once. */
  onLost: () => Promise<void>;
}

export class NodeMembership {
  private lease: Lease | undefined;
  private lastRenewed = 0;
  private timer: TimerHandle | undefined;
  private renewing = false;
  private closed = false;
  /** Times the node self-fenced (for status and tests). */
  fencedCount = 0;

  private constructor(
    private readonly meta: MetaStore,
    private readonly info: NodeRegistration,
    private readonly opts: MembershipOptions,
  ) {}

  static async register(meta: MetaStore, info: NodeRegistration, opts: MembershipOptions): Promise<NodeMembership> {
    const m = new NodeMembership(meta, info, opts);
    await m.join();
    m.timer = opts.clock.setInterval(() => void m.tick(), opts.renewIntervalMs);
    return m;
  }

  private async join(): Promise<void> {
    const lease = await this.meta.grantLease(this.info.nodeId, this.opts.ttlMs);
    this.lastRenewed = this.opts.clock.monotonic();
    await this.meta.put(NODES_PREFIX + this.info.nodeId, JSON.stringify(this.info), { lease });
    this.lease = lease;
    this.opts.logger.info('node registered', { node: this.info.nodeId, lease: lease.id, ttlMs: this.opts.ttlMs });
  }

  /** True while the lease is believed valid (renewed within its TTL). */
  get alive(): boolean {
    return this.lease !== undefined && this.opts.clock.monotonic() - this.lastRenewed < this.opts.ttlMs;
  }

  private async tick(): Promise<void> {
    if (this.closed || this.renewing) return;
    // Woken after a pause (SIGSTOP, a long GC) past the TTL: fence before anything else runs.
    if (this.lease && this.opts.clock.monotonic() - this.lastRenewed >= this.opts.ttlMs) {
      await this.fence('lease expired while the process was not running');
      return;
    }
    if (!this.lease) return;
    this.renewing = true;
    const started = this.opts.clock.monotonic();
    try {
      const ok = await this.lease.renew();
      if (ok && !this.closed) this.lastRenewed = started;
      else if (!ok) await this.fence('lease lost');
    } catch (e) {
      if (this.opts.clock.monotonic() - this.lastRenewed >= this.opts.ttlMs - this.opts.renewIntervalMs) {
        await this.fence(`lease could not be renewed in time: ${toStreamingError(e).message}`);
      } else {
        this.opts.logger.warn('lease renewal failed; retrying', { node: this.info.nodeId, error: toStreamingError(e).message });
      }
    } finally {
      this.renewing = false;
    }
  }

  private async fence(reason: string): Promise<void> {
    if (this.closed) return;
    this.lease = undefined;
    this.fencedCount++;
    this.opts.logger.error('node self-fenced: stopping every WAL', { node: this.info.nodeId, reason });
    this.renewing = true;
    try {
      await this.opts.onLost();
      if (!this.closed) await this.join();
    } catch (e) {
      this.opts.logger.warn('re-registering after a self-fence failed; will retry', { node: this.info.nodeId, error: toStreamingError(e).message });
    } finally {
      this.renewing = false;
    }
  }

  /** Stops renewing and removes the registration (so the coordinator moves the pchannels now). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    await this.lease?.revoke().catch(() => undefined);
    this.lease = undefined;
  }
}

/** Calls onUp/onDown as node registrations appear and vanish (the current ones first, as ups). */
export async function watchNodes(meta: MetaStore, onUp: (info: NodeRegistration) => void, onDown: (nodeId: string) => void): Promise<Unsubscribe> {
  const live = new Map<string, number>();
  const apply = (key: string, value: string | undefined, version: number): void => {
    const id = key.slice(NODES_PREFIX.length);
    const seen = live.get(id);
    if (seen !== undefined && seen >= version) return;
    if (value === undefined) {
      if (seen === undefined) return;
      live.delete(id);
      onDown(id);
    } else {
      live.set(id, version);
      if (seen === undefined) onUp(JSON.parse(value) as NodeRegistration);
    }
  };
  const resync = async (): Promise<void> => {
    const all = await meta.list(NODES_PREFIX);
    for (const [key, v] of all) apply(key, v.value, v.version);
    for (const id of [...live.keys()]) if (!all.has(NODES_PREFIX + id)) {
      live.delete(id);
      onDown(id);
    }
  };
  const unsubscribe = await meta.watch(NODES_PREFIX, (ev) => {
    if (ev.type === 'resync') void resync();
    else if (ev.type === 'put') apply(ev.key, ev.value, ev.version);
    else {
      const id = ev.key.slice(NODES_PREFIX.length);
      if (live.has(id)) {
        live.delete(id);
        onDown(id);
      }
    }
  });
  await resync();
  return unsubscribe;
}
