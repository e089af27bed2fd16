/**
 * Flush jobs over BullMQ (cluster mode): the owner of a pchannel queues the jobs of its sealed
 * segments; any process running a BullMqFlushRunner takes them. Job id = pchannel + segment id +
 * owner term, so a resubmitted job is not queued twice while a new owner's job is never blocked by
 * its fenced predecessor. Retriable failures are retried
 * with exponential backoff; a fenced job (the pchannel moved) fails at once without retries — the
 * new owner resubmits the segment at its term.
 */
import { Queue, UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { isFenced, isRetriable, toStreamingError } from '../../runtime/errors';
import { createLogger, type Logger } from '../../runtime/logger';
import type { FlushJob, FlushQueue } from './flush-queue';
import { defaultConcurrency, type FlushWorker } from './inline-flush-queue';

export const FLUSH_QUEUE_NAME = 'walstream-flush';

export interface BullMqFlushOptions {
  connection: ConnectionOptions;
  /** BullMQ key prefix (Redis keys `{prefix}:{queue}:…`). Default 'walstream'. */
  prefix?: string;
  /** Attempts per job. Default 8. */
  attempts?: number;
  /** First retry delay, doubling. Default 200 ms. */
  backoffMs?: number;
}

/**
 * One job per segment and owner term: a resubmission by the same owner is deduplicated, while the
 * next owner's job for a segment whose old job failed as fenced is a new job.
 */
export function flushJobId(job: Pick<FlushJob, 'pchannel' | 'segmentId' | 'term'>): string {
  return `${job.pchannel}-${job.segmentId}-t${job.term}`;
}

export class BullMqFlushQueue implements FlushQueue {
  private readonly queue: Queue<FlushJob>;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: BullMqFlushOptions) {
    this.queue = new Queue<FlushJob>(FLUSH_QUEUE_NAME, { connection: opts.connection, prefix: opts.prefix ?? 'walstream' });
    // Connection errors (Redis restarting) while BullMQ reconnects; without a listener BullMQ prints them to stderr.
    const logger = createLogger('flush.bullmq');
    this.queue.on('error', (err) => logger.debug('flush queue connection error', { error: err.message }));
  }

  async submit(job: FlushJob): Promise<void> {
    await this.queue.add('flush', job, {
      jobId: flushJobId(job),
      attempts: this.opts.attempts ?? 8,
      backoff: { type: 'exponential', delay: this.opts.backoffMs ?? 200 },
      removeOnComplete: { count: 10_000 },
      removeOnFail: { count: 10_000 },
    });
  }

  /** The BullMQ queue (for inspection in tests and status). */
  get bullQueue(): Queue<FlushJob> {
    return this.queue;
  }

  close(): Promise<void> {
    this.closing ??= this.queue.close();
    return this.closing;
  }
}

/**
 * How fast a job held by a dead worker (a killed node) is taken over. BullMQ's defaults (30 s lock,
 * 30 s stall check, failed for good after one stall) left such a segment unflushed for ~90 s, or
 * until its pchannel moved. A job may safely run twice (same files, the commit is a term CAS), so
 * the lock is short and stalls are retried; the lock is renewed every half lock by the worker's
 * event loop, which the flush threads keep free.
 */
export const FLUSH_JOB_LOCK = { lockDurationMs: 5_000, stalledIntervalMs: 2_000, maxStalledCount: 10 } as const;

/** Runs flush jobs from the BullMQ queue on this process. */
export class BullMqFlushRunner {
  private readonly worker: Worker<FlushJob>;
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;

  constructor(flush: FlushWorker, opts: BullMqFlushOptions & { concurrency?: number; logger?: Logger }) {
    this.logger = opts.logger ?? createLogger('flush.bullmq');
    this.worker = new Worker<FlushJob>(
      FLUSH_QUEUE_NAME,
      async (job: Job<FlushJob>) => {
        try {
          await flush.process(job.data);
        } catch (e) {
          const err = toStreamingError(e);
          if (isFenced(err) || !isRetriable(err)) {
            this.logger.warn('flush job failed for good', { jobId: job.id, code: err.code, error: err.message });
            throw new UnrecoverableError(`${err.code}: ${err.message}`);
          }
          throw err;
        }
      },
      {
        connection: opts.connection,
        prefix: opts.prefix ?? 'walstream',
        concurrency: opts.concurrency ?? defaultConcurrency(flush),
        lockDuration: FLUSH_JOB_LOCK.lockDurationMs,
        stalledInterval: FLUSH_JOB_LOCK.stalledIntervalMs,
        maxStalledCount: FLUSH_JOB_LOCK.maxStalledCount,
      },
    );
    this.worker.on('completed', (job) => this.logger.info('segment flushed', { jobId: job.id, pchannel: job.data.pchannel, segmentId: job.data.segmentId, term: job.data.term }));
    this.worker.on('failed', (job, err) => this.logger.warn('flush attempt failed', { jobId: job?.id, attemptsMade: job?.attemptsMade, error: err.message }));
    this.worker.on('error', (err) => this.logger.error('flush worker error', { error: err.message }));
  }

  get bullWorker(): Worker<FlushJob> {
    return this.worker;
  }

  close(): Promise<void> {
    this.closing ??= this.worker.close();
    return this.closing;
  }
}
