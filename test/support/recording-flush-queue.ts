import type { FlushJob, FlushQueue } from '../../storage/flush/flush-queue';

/** A flush queue that only records the jobs it is given (tests of the WAL side). */
export class RecordingFlushQueue implements FlushQueue {
  readonly jobs: FlushJob[] = [];
  submit(job: FlushJob): Promise<void> {
    this.jobs.push(job);
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
