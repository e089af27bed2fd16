/**
 * FlushThreadPool: the few node:worker_threads threads that run the file step of flush jobs
 * (flush-files.ts: read the WAL range, encode Arrow, checksum, put the files). A 128 MiB segment
 * costs about half a second of CPU; on the main thread that is half a second during which the WAL
 * actors of the node append nothing, and a second core stays idle. Here it runs beside them.
 *
 * - Threads start lazily (the first job that finds no free thread starts one, up to `threads`)
 *   and are reused across jobs (each opens its WAL backend and object store once).
 * - A thread encodes one segment at a time and takes its next job as soon as the last one's
 *   segment is encoded ('writing'): the next segment is read and encoded while the last one's
 *   files are checksummed, written and synced, instead of the thread idling on the store's fsync
 *   (JOBS_PER_THREAD jobs at most per thread; `jobsAtOnce` is what a queue should run at a time to
 *   keep them busy). Jobs beyond that wait here in order.
 * - A thread that dies (crash, process.exit, terminate(), out of memory) fails the jobs it held
 *   (up to two) with a retriable INNER error — the flush queue retries them — and is replaced by
 *   the next job.
 * - Errors keep their StreamingError code, retriable flag and details across the boundary
 *   (flush-thread-protocol.ts), so a fenced or invalid job is treated as it would be in-thread.
 * - close() refuses new jobs (ON_SHUTDOWN), fails the ones still waiting, lets running ones finish
 *   for up to `closeTimeoutMs` (then ends their threads: they fail with ON_SHUTDOWN), and ends every
 *   thread (each closes its backend and store first).
 * - An idle thread does not keep the process alive (unref); a busy one does.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ErrorCode, StreamingError, toStreamingError } from '../../runtime/errors';
import { createLogger, type Logger } from '../../runtime/logger';
import type { FlushJob } from './flush-queue';
import type { FlushFiles } from './flush-files';
import type { SegmentData } from '../segments/segment-writer';
import { errorFromWire, threadDiedError, transferablesOf, type FlushThreadData, type FlushThreadSettings, type FromThread, type ToThread } from './flush-thread-protocol';

export interface FlushThreadPoolOptions {
  settings: FlushThreadSettings;
  /** Threads at most (≥ 1). */
  threads: number;
  /** How long close() lets running jobs finish before it ends their threads, in ms. Default 30000. */
  closeTimeoutMs?: number;
  /** How long a thread may take to close its backend and store and exit before it is terminated, in ms. Default 5000. */
  exitTimeoutMs?: number;
  /**
   * The script a thread runs. Default: flush-thread.js when compiled, flush-thread-entry.js from
   * the sources. Another script must speak flush-thread-protocol.ts (tests drive the pool's
   * scheduling with one whose jobs move on when told).
   */
  script?: string;
  logger?: Logger;
}

/**
 * Jobs a thread holds at once: one encoding its segment, one writing its files. More would only
 * make encodings share the thread (and hold more encoded segments in memory).
 */
export const JOBS_PER_THREAD = 2;

/** A thread and what it runs. */
interface Slot {
  readonly worker: Worker;
  readonly threadId: number;
  /** Its jobs by id, in the order they were sent. */
  readonly tasks: Map<number, Task>;
  /** The job still encoding its segment, if any: the thread takes no other job until it writes. */
  encoding: number | undefined;
  /** The 'error' event that came before the exit, if any. */
  error: Error | undefined;
  readonly exited: Promise<number>;
}

interface Task {
  readonly id: number;
  readonly job: FlushJob;
  /** The segment as the write buffer encoded it, until it is sent to a thread. */
  data?: SegmentData | undefined;
  resolve(files: FlushFiles): void;
  reject(e: Error): void;
}

/** The script a flush thread runs. */
function threadScript(): string {
  // Compiled (dist/): flush-thread.js sits beside this file and starts itself. From the sources
  // (jest, ts-node): a thread does not inherit the main thread's TypeScript loader, so the JS entry
  // beside flush-thread.ts installs one, then loads it.
  return path.extname(__filename) === '.js' ? path.join(__dirname, 'flush-thread.js') : path.join(__dirname, 'flush-thread-entry.js');
}

/**
 * The node options of this process for a flush thread, minus ts-node preloads (`-r ts-node/register`,
 * as `npm run bench` runs): a thread inherits them by default, and loading ts-node costs ~0.4 s per
 * thread that needs none (compiled) or brings its own loader (flush-thread-entry.js).
 */
function threadExecArgv(): string[] {
  const argv = process.execArgv;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if ((a === '-r' || a === '--require') && argv[i + 1]?.startsWith('ts-node')) i++;
    else if (!/^(-r|--require)=ts-node/.test(a)) out.push(a);
  }
  return out;
}

export class FlushThreadPool {
  private readonly slots = new Set<Slot>();
  private readonly waiting: Task[] = [];
  private readonly logger: Logger;
  private readonly closeTimeoutMs: number;
  private readonly exitTimeoutMs: number;
  private nextId = 1;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Called once when the next task ends (close() waits on it). */
  private readonly taskEnded: (() => void)[] = [];

  constructor(private readonly opts: FlushThreadPoolOptions) {
    if (!Number.isSafeInteger(opts.threads) || opts.threads < 1) {
      throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `flush threads must be a positive integer, got ${opts.threads}`, { details: { field: 'threads', value: opts.threads } });
    }
    this.logger = opts.logger ?? createLogger('flush.threads');
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 30_000;
    this.exitTimeoutMs = opts.exitTimeoutMs ?? 5_000;
  }

  /** Most threads this pool runs. */
  get size(): number {
    return this.opts.threads;
  }

  /** Jobs that keep every thread busy: a queue in front of the pool should run this many at a time. */
  get jobsAtOnce(): number {
    return this.opts.threads * JOBS_PER_THREAD;
  }

  /** The threads running now: their threadId, how many jobs are on them, and the Worker (status and tests). */
  get live(): readonly { threadId: number; busy: boolean; jobs: number; worker: Worker }[] {
    return [...this.slots].map((s) => ({ threadId: s.threadId, busy: s.tasks.size > 0, jobs: s.tasks.size, worker: s.worker }));
  }

  /**
   * Runs the file step of `job` on a thread; resolves with what the commit needs. With `data` (the
   * segment encoded by the write buffer), the thread writes its files only; their large buffers
   * move to the thread and must not be used here any more.
   */
  run(job: FlushJob, data?: SegmentData): Promise<FlushFiles> {
    if (this.closed) return Promise.reject(new StreamingError(ErrorCode.ON_SHUTDOWN, 'flush threads are closed'));
    return new Promise<FlushFiles>((resolve, reject) => {
      this.waiting.push({ id: this.nextId++, job, ...(data ? { data } : {}), resolve, reject });
      this.pump();
    });
  }

  /** Refuses new jobs, fails waiting ones, lets running ones finish (bounded), ends every thread. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    for (const t of this.waiting.splice(0)) t.reject(new StreamingError(ErrorCode.ON_SHUTDOWN, `flush threads closed before segment ${t.job.segmentId} of ${t.job.pchannel} started`));
    const deadline = performance.now() + this.closeTimeoutMs;
    while ([...this.slots].some((s) => s.tasks.size > 0)) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.taskEnded.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await Promise.all([...this.slots].map((s) => this.endThread(s)));
  }

  /** Asks an idle thread to close and exit (terminates it after exitTimeoutMs); terminates a busy one. */
  private async endThread(slot: Slot): Promise<void> {
    slot.worker.ref(); // an exiting thread holds the process until it is gone
    if (slot.tasks.size > 0) {
      const segments = [...slot.tasks.values()].map((t) => `${t.job.pchannel}/${t.job.segmentId}`);
      this.logger.warn('ending a flush thread with jobs still running', { threadId: slot.threadId, segments });
      await slot.worker.terminate();
    } else {
      this.send(slot, { type: 'close' });
      const timer = setTimeout(() => void slot.worker.terminate(), this.exitTimeoutMs);
      await slot.exited;
      clearTimeout(timer);
    }
    await slot.exited;
  }

  private pump(): void {
    while (this.waiting.length > 0 && !this.closed) {
      const free = [...this.slots].filter((s) => s.encoding === undefined && s.tasks.size < JOBS_PER_THREAD);
      // An idle thread first, then a new one, then one that is writing its last job's files.
      let slot = free.find((s) => s.tasks.size === 0);
      if (slot === undefined && this.slots.size < this.opts.threads) slot = this.spawn();
      slot ??= free[0];
      if (slot === undefined) return;
      const task = this.waiting.shift()!;
      slot.tasks.set(task.id, task);
      slot.encoding = task.id;
      slot.worker.ref();
      try {
        this.send(slot, { type: 'job', id: task.id, job: task.job, ...(task.data ? { data: task.data } : {}) }, task.data ? transferablesOf(task.data) : undefined);
      } catch (e) {
        // Not sent (the message could not be cloned or moved): the thread never saw it.
        slot.tasks.delete(task.id);
        slot.encoding = undefined;
        if (slot.tasks.size === 0) slot.worker.unref();
        task.reject(new StreamingError(ErrorCode.INNER, `flush job of segment ${task.job.segmentId} of ${task.job.pchannel} could not be sent to a flush thread: ${toStreamingError(e).message}; the job can be retried`, { retriable: true }));
        continue;
      }
      task.data = undefined; // the thread has it
    }
  }

  private send(slot: Slot, m: ToThread, transfer?: ArrayBuffer[]): void {
    slot.worker.postMessage(m, transfer);
  }

  private spawn(): Slot {
    const data: FlushThreadData = { settings: this.opts.settings };
    const worker = new Worker(this.opts.script ?? threadScript(), { workerData: data, execArgv: threadExecArgv() });
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    const slot: Slot = { worker, threadId: worker.threadId, tasks: new Map(), encoding: undefined, error: undefined, exited };
    this.slots.add(slot);
    this.logger.debug('flush thread started', { threadId: slot.threadId, threads: this.slots.size });
    worker.on('message', (m: FromThread) => this.onMessage(slot, m));
    worker.on('error', (e: Error) => {
      slot.error = e;
      this.logger.error('flush thread failed', { threadId: slot.threadId, error: e.message });
    });
    void exited.then((code) => this.onExit(slot, code));
    return slot;
  }

  private onMessage(slot: Slot, m: FromThread): void {
    const task = slot.tasks.get(m.id);
    if (task === undefined) {
      this.logger.warn('unexpected message from a flush thread', { threadId: slot.threadId, type: m.type, id: m.id });
      return;
    }
    if (slot.encoding === m.id) slot.encoding = undefined;
    if (m.type === 'writing') {
      this.pump();
      return;
    }
    slot.tasks.delete(m.id);
    if (slot.tasks.size === 0 && !this.closed) slot.worker.unref(); // idle: does not hold the process
    if (m.type === 'done') task.resolve(m.files);
    else task.reject(errorFromWire(m.error));
    this.afterTask();
  }

  private onExit(slot: Slot, code: number): void {
    this.slots.delete(slot);
    const tasks = [...slot.tasks.values()];
    slot.tasks.clear();
    slot.encoding = undefined;
    if (tasks.length > 0) {
      const why = slot.error !== undefined ? `${slot.error.name}: ${slot.error.message}` : `it exited with code ${code}`;
      for (const task of tasks) {
        if (this.closed) {
          task.reject(new StreamingError(ErrorCode.ON_SHUTDOWN, `flush threads closed while segment ${task.job.segmentId} of ${task.job.pchannel} was flushing (${why})`, { details: { threadId: slot.threadId } }));
        } else {
          this.logger.warn('flush thread died with a job; the job fails retriably and the thread is replaced', { threadId: slot.threadId, pchannel: task.job.pchannel, segmentId: task.job.segmentId, reason: why });
          task.reject(threadDiedError(slot.threadId, task.job, why));
        }
      }
      this.afterTask();
    } else if (!this.closed) {
      this.logger.warn('idle flush thread exited; the next job starts another', { threadId: slot.threadId, code, error: slot.error?.message });
    }
  }

  private afterTask(): void {
    for (const w of this.taskEnded.splice(0)) w();
    this.pump();
  }
}
