/**
 * Coordinator election in cluster mode: candidates campaign for a lease-backed leadership with an
 * epoch; the leader renews it at ≤ 1/3 of its TTL and steps down at once when it cannot (or when
 * the process was paused past the TTL). Only the leader runs the coordinator; its writes are
 * leader writes at its epoch, so a deposed leader's writes never land. A standby takes over when
 * the leader's lease expires and continues from the persisted state.
 */
import type { Clock, TimerHandle } from '../../clock';
import { toStreamingError } from '../../errors';
import type { Logger } from '../../logger';
import type { Leadership, MetaStore } from '../../../storage/meta/meta-store';

export const COORDINATOR_ELECTION = 'coordinator';

export interface ElectionOptions {
  ttlMs: number;
  renewIntervalMs: number;
  clock: Clock;
  logger: Logger;
  onElected: (leadership: Leadership) => Promise<void>;
  onDeposed: (reason: string) => Promise<void>;
}

export class CoordinatorElection {
  private leadership: Leadership | undefined;
  private lastRenewed = 0;
  private timer: TimerHandle | undefined;
  private busy = false;
  private closed = false;

  constructor(
    private readonly meta: MetaStore,
    private readonly candidateId: string,
    private readonly opts: ElectionOptions,
  ) {}

  start(): void {
    this.timer = this.opts.clock.setInterval(() => void this.tick(), this.opts.renewIntervalMs);
    void this.tick();
  }

  get isLeader(): boolean {
    return this.leadership !== undefined;
  }

  get epoch(): number | undefined {
    return this.leadership?.epoch;
  }

  private async tick(): Promise<void> {
    if (this.closed || this.busy) return;
    this.busy = true;
    try {
      if (!this.leadership) {
        const l = await this.meta.campaign(COORDINATOR_ELECTION, this.candidateId, this.opts.ttlMs);
        if (l && !this.closed) {
          this.leadership = l;
          this.lastRenewed = this.opts.clock.monotonic();
          this.opts.logger.info('elected coordinator leader', { candidate: this.candidateId, epoch: l.epoch });
          await this.opts.onElected(l);
        }
        return;
      }
      if (this.opts.clock.monotonic() - this.lastRenewed >= this.opts.ttlMs) {
        await this.depose('leadership expired while the process was not running');
        return;
      }
      const started = this.opts.clock.monotonic();
      let ok: boolean;
      try {
        ok = await this.leadership.renew();
      } catch (e) {
        if (this.opts.clock.monotonic() - this.lastRenewed >= this.opts.ttlMs - this.opts.renewIntervalMs) await this.depose(`renewal failed: ${toStreamingError(e).message}`);
        return;
      }
      if (ok) this.lastRenewed = started;
      else await this.depose('leadership lost');
    } catch (e) {
      this.opts.logger.warn('election round failed', { candidate: this.candidateId, error: toStreamingError(e).message });
    } finally {
      this.busy = false;
    }
  }

  private async depose(reason: string): Promise<void> {
    const l = this.leadership;
    this.leadership = undefined;
    this.opts.logger.warn('stepping down as coordinator leader', { candidate: this.candidateId, epoch: l?.epoch, reason });
    await this.opts.onDeposed(reason);
  }

  /** Stops campaigning; a leader resigns so a standby takes over at once. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    const l = this.leadership;
    this.leadership = undefined;
    if (l) {
      await this.opts.onDeposed('shutting down').catch(() => undefined);
      await l.resign().catch(() => undefined);
    }
  }
}
