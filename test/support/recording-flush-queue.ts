import type { FlushJob, FlushQueue } from '../../storage/flush/flush-queue';

/** A flush queue that records the jobs it is given (tests of the WAL side), and hands them on to `forwardTo` when set (benchmarks that flush). */
export class RecordingFlushQueue implements FlushQueue {
  readonly jobs: FlushJob[] = [];
  forwardTo: FlushQueue | undefined;
  submit(job: FlushJob): Promise<void> {
    this.jobs.push(job);
    return this.forwardTo ? this.forwardTo.submit(job) : Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
