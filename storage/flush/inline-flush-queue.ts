/**
 * The in-process flush queue (standalone): jobs run on this process, a few at a time, retried with
 * backoff on retriable errors; a job for a segment already queued or running is not queued twice.
 * A job refused as fenced (a newer owner took the pchannel) is dropped: the new owner resubmits it.
 */
import type { Clock } from '../../runtime/clock';
import { isFenced, isRetriable, toStreamingError, ErrorCode, StreamingError } from '../../runtime/errors';
import { createLogger, type Logger } from '../../runtime/logger';
import type { FlushJob, FlushQueue } from './flush-queue';

export interface FlushWorker {
  /** Writes the segment's files and commits it (CAS on the job's term). Idempotent. */
  process(job: FlushJob): Promise<void>;
  /** Jobs it can usefully run at a time (what a queue runs unless told otherwise); 2 when it does not say. */
  readonly concurrency?: number;
}

/** Jobs a queue runs at a time for `worker`, unless told otherwise. */
export function defaultConcurrency(worker: FlushWorker): number {
  return worker.concurrency ?? 2;
}

export interface InlineFlushQueueOptions {
  /** Jobs run at once. Default: what the worker asks for (defaultConcurrency). */
  concurrency?: number;
  /** Attempts per job before it is given up (it is resubmitted on the next open of its pchannel). Default 5. */
  attempts?: number;
  /** First retry backoff, doubling. Default 100 ms. */
  backoffMs?: number;
  logger?: Logger;
}

export class InlineFlushQueue implements FlushQueue {
  private readonly queued: FlushJob[] = [];
  private readonly known = new Set<string>();
  private running = 0;
  private closed = false;
  private readonly idle: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly logger: Logger;
  /** Jobs finished (committed), for status and tests. */
  completed = 0;
  failed = 0;

  constructor(
    private readonly worker: FlushWorker,
    private readonly clock: Clock,
    opts: InlineFlushQueueOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? defaultConcurrency(worker);
    this.attempts = opts.attempts ?? 5;
    this.backoffMs = opts.backoffMs ?? 100;
    this.logger = opts.logger ?? createLogger('flush');
  }

  submit(job: FlushJob): Promise<void> {
    if (this.closed) return Promise.reject(new StreamingError(ErrorCode.ON_SHUTDOWN, 'flush queue closed'));
    const key = `${job.pchannel}/${job.segmentId}`;
    if (this.known.has(key)) return Promise.resolve();
    this.known.add(key);
    this.queued.push(job);
    this.pump();
    return Promise.resolve();
  }

  private pump(): void {
    while (!this.closed && this.running < this.concurrency && this.queued.length > 0) {
      const job = this.queued.shift()!;
      this.running++;
      void this.run(job).finally(() => {
        this.running--;
        this.known.delete(`${job.pchannel}/${job.segmentId}`);
        if (this.running === 0 && this.queued.length === 0) for (const w of this.idle.splice(0)) w();
        this.pump();
      });
    }
  }

  private async run(job: FlushJob): Promise<void> {
    let backoff = this.backoffMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const t0 = this.clock.monotonic();
        await this.worker.process(job);
        this.completed++;
        this.logger.info('segment flushed', { pchannel: job.pchannel, segmentId: job.segmentId, term: job.term, ms: Math.round(this.clock.monotonic() - t0) });
        return;
      } catch (e) {
        const err = toStreamingError(e);
        if (isFenced(err)) {
          this.logger.warn('flush job of a fenced owner dropped; the new owner flushes the segment', { pchannel: job.pchannel, segmentId: job.segmentId, term: job.term });
          this.failed++;
          return;
        }
        if (!isRetriable(err) || attempt >= this.attempts || this.closed) {
          this.failed++;
          this.logger.error('flush job failed', { pchannel: job.pchannel, segmentId: job.segmentId, attempt, error: err.message });
          return;
        }
        this.logger.warn('flush job failed; retrying', { pchannel: job.pchannel, segmentId: job.segmentId, attempt, backoffMs: backoff, error: err.message });
        await this.clock.sleep(backoff);
        backoff *= 2;
      }
    }
  }

  /** Resolves when nothing is queued or running. */
  drained(): Promise<void> {
    if (this.running === 0 && this.queued.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queued.length = 0;
    if (this.running > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }
}
