/**
 * A subscription that follows its pchannel across moves. It reads from the current owner; when
 * that ends with a retriable error (the WAL closed, the pchannel moved, the node is gone) it waits
 * for the new owner and resumes from the last delivered message's last-confirmed id, filtering
 * timeticks ≤ the last delivered one — so every message is delivered once, in timetick order.
 */
import type { Clock } from '../clock';
import { ErrorCode, isRetriable, needsNewAssignment, StreamingError, toStreamingError } from '../errors';
import type { Logger } from '../logger';
import type { MessageId } from '../message/message-id';
import { maxTimetick, type Timetick } from '../message/timetick';
import { pchannelOf, type LogMessage } from '../message/types';
import type { DeliverPolicy } from '../../storage/wal/backend';
import type { SubscribeRequest, Subscription } from './api';
import type { Router } from './router';
import type { NodeSubscription } from './transport';

const RESUBSCRIBE_TIMEOUT_MS = 60_000;

export class ResumableSubscription implements Subscription {
  private lastTt: Timetick = 0n;
  private lastLc: MessageId = '';
  private delivered = 0;
  private current: NodeSubscription | undefined;
  private closed = false;
  private readonly pchannel: string;
  /** Times the subscription moved to a new owner. */
  resumes = 0;

  constructor(
    private readonly router: Router,
    private readonly req: SubscribeRequest,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    if ((req.vchannel === undefined) === (req.pchannel === undefined)) {
      throw new StreamingError(ErrorCode.INVALID_ARGUMENT, 'subscribe needs exactly one of vchannel or pchannel', { details: { field: 'vchannel' } });
    }
    this.pchannel = req.pchannel ?? pchannelOf(req.vchannel!);
  }

  get lastTimetick(): Timetick {
    return this.lastTt;
  }

  get lastConfirmedId(): MessageId {
    return this.lastLc;
  }

  close(): void {
    this.closed = true;
    this.current?.close();
  }

  private resumePoint(): { policy: DeliverPolicy; timetickGt: Timetick | undefined } {
    if (this.delivered === 0) return { policy: this.req.policy, timetickGt: this.req.filters?.timetickGt };
    const policy: DeliverPolicy = this.lastLc === '' ? { type: 'all' } : { type: 'startFrom', id: this.lastLc };
    const gt = this.req.filters?.timetickGt;
    return { policy, timetickGt: gt === undefined ? this.lastTt : maxTimetick(gt, this.lastTt) };
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<LogMessage> {
    while (!this.closed) {
      const { policy, timetickGt } = this.resumePoint();
      const filters = { ...(this.req.filters ?? {}), ...(timetickGt !== undefined ? { timetickGt } : {}) };
      const options = { policy, filters, ...(this.req.vchannel !== undefined ? { vchannel: this.req.vchannel } : {}), ...(this.req.credits !== undefined ? { credits: this.req.credits } : {}) };
      const deadline = this.clock.monotonic() + RESUBSCRIBE_TIMEOUT_MS;
      try {
        this.current = await this.router.withOwner(this.pchannel, deadline, 'subscribe', (o) => this.router.nodes.subscribe(o.node, this.pchannel, o.term, options, RESUBSCRIBE_TIMEOUT_MS));
      } catch (e) {
        if (this.closed) return;
        throw e;
      }
      if (this.closed) {
        this.current.close();
        return;
      }
      try {
        for (;;) {
          const r = await this.current.next();
          if (r.done) break;
          const m = r.value;
          if (m.timetick <= this.lastTt && this.delivered > 0) continue; // never twice
          this.lastTt = m.timetick;
          this.lastLc = m.lastConfirmedId;
          this.delivered++;
          yield m;
          if (this.closed) return;
        }
        if (this.closed) return;
        // Ended without an error: the owner closed it; look for the next owner.
      } catch (e) {
        if (this.closed) return;
        const err = toStreamingError(e);
        if (!needsNewAssignment(err) && !isRetriable(err) && err.code !== ErrorCode.ON_SHUTDOWN) throw err;
        this.logger.info('subscription lost its owner; resuming', { pchannel: this.pchannel, code: err.code, lastTimetick: this.lastTt });
      } finally {
        this.current.close();
      }
      this.resumes++;
      this.router.invalidate();
      await this.clock.sleep(10);
    }
  }
}
