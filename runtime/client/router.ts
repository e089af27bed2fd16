/**
 * Routes vchannel → pchannel → owner node using the watched assignment, and makes calls survive
 * pchannel moves: on CHANNEL_NOT_EXIST / UNMATCHED_CHANNEL_TERM / CHANNEL_FENCED it waits until the
 * assignment of that pchannel changes and the new owner is ready (or a backoff passes), then
 * retries, within the caller's deadline. Appends carry an idempotency key (one is added when the
 * caller gave none), so a retry after an ambiguous failure is not written twice.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock';
import { ErrorCode, isRetriable, needsNewAssignment, StreamingError, toStreamingError } from '../errors';
import type { Logger } from '../logger';
import { pchannelOf, type Message, type NewMessage } from '../message/types';
import type { AppendResult } from './api';
import type { Assignment, ChannelAssignment, CoordinatorTransport, NodeTransport } from './transport';

export interface RouterOptions {
  /** First backoff between retries. Default 20 ms. */
  backoffInitialMs: number;
  /** Default 1000 ms. */
  backoffMaxMs: number;
}

export const DEFAULT_ROUTER_OPTIONS: RouterOptions = { backoffInitialMs: 20, backoffMaxMs: 1000 };

export class Router {
  private assignment: Assignment | undefined;
  private watching: Promise<Assignment> | undefined;
  private closed = false;

  constructor(
    private readonly coordinator: Pick<CoordinatorTransport, 'getAssignment' | 'watchAssignment'>,
    readonly nodes: NodeTransport,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly opts: RouterOptions = DEFAULT_ROUTER_OPTIONS,
  ) {}

  close(): void {
    this.closed = true;
  }

  /** The owner of `pchannel` (ASSIGNED), waiting for one until `deadline` (monotonic ms). */
  async resolve(pchannel: string, deadline: number): Promise<ChannelAssignment & { node: string }> {
    for (;;) {
      if (!this.assignment) this.assignment = await this.coordinator.getAssignment(Math.max(1, deadline - this.clock.monotonic()));
      const c = this.assignment.channels.find((x) => x.name === pchannel);
      if (!c) {
        throw new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, `no pchannel named ${pchannel}`, { details: { pchannel }, retriable: false });
      }
      if (c.state === 'ASSIGNED' && c.node !== undefined) return { ...c, node: c.node };
      await this.waitForChange(deadline, undefined);
    }
  }

  /** Waits for the next assignment version (shared by all callers), at most until `deadline` or `maxWaitMs`. */
  async waitForChange(deadline: number, maxWaitMs: number | undefined): Promise<void> {
    const now = this.clock.monotonic();
    const remaining = deadline - now;
    if (remaining <= 0) throw new StreamingError(ErrorCode.UNKNOWN, 'deadline exceeded waiting for the pchannel to be ready', { retriable: true, details: { deadlineExceeded: true } });
    const wait = Math.max(1, Math.min(remaining, maxWaitMs ?? remaining));
    const after = this.assignment?.version ?? -1;
    if (!this.watching) {
      this.watching = this.coordinator.watchAssignment(after, Math.min(wait, 30_000)).finally(() => (this.watching = undefined));
    }
    let timer: { cancel(): void } | undefined;
    const next = await Promise.race([
      this.watching,
      new Promise<undefined>((resolve) => (timer = this.clock.setTimeout(() => resolve(undefined), wait))),
    ]).finally(() => timer?.cancel());
    if (next && (!this.assignment || next.version > this.assignment.version)) this.assignment = next;
  }

  /** Forget the cached assignment (the next resolve asks the coordinator). */
  invalidate(): void {
    this.assignment = undefined;
  }

  get currentAssignment(): Assignment | undefined {
    return this.assignment;
  }

  /**
   * Runs `call` against the owner of `pchannel`, retrying across moves until `deadline`.
   * Gives up at once on errors that a retry cannot fix.
   */
  async withOwner<T>(pchannel: string, deadline: number, what: string, call: (owner: ChannelAssignment & { node: string }) => Promise<T>): Promise<T> {
    let backoff = this.opts.backoffInitialMs;
    let lastError: StreamingError | undefined;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'client closed');
      let owner: ChannelAssignment & { node: string };
      try {
        owner = await this.resolve(pchannel, deadline);
      } catch (e) {
        throw lastError && hasDeadline(e) ? withCause(lastError, e) : e;
      }
      try {
        return await this.unlessMoved(pchannel, owner, deadline, call(owner));
      } catch (e) {
        const err = toStreamingError(e);
        lastError = err;
        const moved = needsNewAssignment(err);
        if (!moved && !isRetriable(err)) throw err;
        if (this.clock.monotonic() >= deadline) throw err;
        this.logger.debug(`${what}: retrying`, { pchannel, node: owner.node, term: owner.term, attempt, code: err.code });
        if (moved) {
          // Wait for the assignment to move past the term that failed (or a backoff, if the coordinator has not noticed yet).
          const failedTerm = owner.term;
          const until = Math.min(deadline, this.clock.monotonic() + Math.max(backoff, 200));
          while (this.clock.monotonic() < until) {
            const c = this.assignment?.channels.find((x) => x.name === pchannel);
            if (c && c.term > failedTerm && c.state === 'ASSIGNED') break;
            try {
              await this.waitForChange(until, until - this.clock.monotonic());
            } catch {
              break;
            }
          }
          const c = this.assignment?.channels.find((x) => x.name === pchannel);
          if (!c || c.term <= failedTerm) this.invalidate();
        } else {
          await this.clock.sleep(Math.min(backoff, Math.max(0, deadline - this.clock.monotonic())));
        }
        backoff = Math.min(this.opts.backoffMaxMs, backoff * 2);
      }
    }
  }

  /**
   * Settles with `attempt`, or fails with CHANNEL_NOT_EXIST as soon as the watched assignment shows
   * the pchannel at a newer term (the owner it was sent to died or moved: waiting for its answer
   * would only burn the deadline; the retry is safe thanks to the idempotency key).
   */
  private unlessMoved<T>(pchannel: string, owner: ChannelAssignment & { node: string }, deadline: number, attempt: Promise<T>): Promise<T> {
    let settled = false;
    const moved = (async (): Promise<never> => {
      while (!settled && this.clock.monotonic() < deadline) {
        const c = this.assignment?.channels.find((x) => x.name === pchannel);
        if (c && c.term > owner.term) {
          throw new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, `${pchannel} moved from ${owner.node} (term ${owner.term}) to ${c.node ?? '?'} (term ${c.term})`, { details: { pchannel } });
        }
        await this.waitForChange(deadline, 30_000).catch(() => undefined);
      }
      return new Promise<never>(() => undefined); // the attempt decides
    })();
    return Promise.race([attempt, moved]).finally(() => {
      settled = true;
      attempt.catch(() => undefined);
    });
  }

  /** Appends to the message's vchannel, retrying across moves; adds an idempotency key when missing. */
  append(message: NewMessage | Message, deadline: number): Promise<AppendResult> {
    const keyed = message.idempotencyKey === undefined ? { ...message, idempotencyKey: randomUUID() } : message;
    const pchannel = pchannelOf(keyed.vchannel);
    return this.withOwner(pchannel, deadline, 'append', (o) => this.nodes.append(o.node, pchannel, o.term, keyed, Math.max(1, deadline - this.clock.monotonic())));
  }
}

function hasDeadline(e: unknown): boolean {
  return e instanceof StreamingError && e.details?.deadlineExceeded === true;
}

function withCause(last: StreamingError, deadline: unknown): StreamingError {
  return new StreamingError(last.code, `${last.message} (then: ${toStreamingError(deadline).message})`, { cause: last, retriable: last.retriable, ...(last.details ? { details: { ...last.details } } : {}) });
}
