/**
 * The flush worker: turns one sealed segment into files in object storage. It checks that the job's
 * term is still the pchannel's, runs the file step (flush-files.ts: read the segment's WAL range —
 * from its CreateSegment to its flush marker, following a transaction with rows in the segment that
 * is still open there until it commits, rolls back or expires — keep the inserts assigned to the
 * segment (committed transactions only) and the deletes of its keys, write the Arrow files and the
 * manifest), then commits the segment as flushed with a compare-and-set on the job's term — a
 * fenced owner's job writes at most identical, uncommitted files.
 *
 * When the process's write buffer (write-buffer.ts) holds the segment complete — encoded as its
 * messages were persisted — the files are written from there, and the WAL range is not read.
 *
 * The file step is the CPU-heavy part. With `threads` it runs on a flush thread (flush-threads.ts)
 * and this thread only checks the term and commits; without, it runs here. The term check and the
 * commit stay here because the MetaStore may be the embedded one, which lives in this thread only.
 */
import { threadId } from 'node:worker_threads';
import type { Logger } from '../../runtime/logger';
import { createLogger } from '../../runtime/logger';
import { ChannelFencedError } from '../../runtime/errors';
import type { WalBackend } from '../wal/backend';
import type { MetaStore } from '../meta/meta-store';
import { pchannelKey } from '../meta/meta-store';
import type { ObjectStore } from '../objects/object-store';
import { flushedKeyPath, type FlushJob } from './flush-queue';
import { writeFlushFiles, writeSegmentFiles, type FlushFiles, type SegmentRows } from './flush-files';
import type { WriteBuffer } from './write-buffer';
import type { FlushThreadPool } from './flush-threads';
import type { FlushWorker } from './inline-flush-queue';

export interface FlushedSegment {
  segmentId: number;
  collectionId: number;
  partitionId: number;
  vchannel: string;
  rows: number;
  deletes: number;
  manifest: string;
  term: number;
  flushTimetick: string;
}

export interface SegmentFlushWorkerDeps {
  /** Read-only access to the pchannel's log (the file step on this thread). */
  backend: WalBackend;
  /** Where the files go (the file step on this thread). */
  objects: ObjectStore;
  meta: MetaStore;
  /** Layout root of segments in the object store. */
  root: string;
  /**
   * When set, the file step runs on these threads, which open their own backend and store on the
   * same logs and bucket (its settings); `backend` and `objects` are then not used by the worker.
   * The worker owns the pool: close() ends it.
   */
  threads?: FlushThreadPool;
  /**
   * The process's write buffer: a job whose segment it holds complete writes the files encoded
   * there instead of reading the WAL range back (see write-buffer.ts).
   */
  writeBuffer?: WriteBuffer;
  logger?: Logger;
}

/** Jobs whose files this worker wrote, by where their rows came from. */
export interface FlushSources {
  /** The segment encoded in the write buffer as its messages were persisted. */
  writeBuffer: number;
  /** The segment's WAL range, read back. */
  wal: number;
}

export class SegmentFlushWorker implements FlushWorker {
  private readonly logger: Logger;
  private readonly counts: FlushSources = { writeBuffer: 0, wal: 0 };

  constructor(private readonly deps: SegmentFlushWorkerDeps) {
    this.logger = deps.logger ?? createLogger('flush.worker');
  }

  /**
   * Jobs to run at a time: with threads, enough for each to encode one segment while it writes
   * another's files (FlushThreadPool.jobsAtOnce); on this thread, 2 (one job's reads and puts
   * overlap the other's encoding).
   */
  get concurrency(): number {
    return this.deps.threads?.jobsAtOnce ?? 2;
  }

  /** The write buffer this worker takes segments from (the process's WALs feed it), if any. */
  get writeBuffer(): WriteBuffer | undefined {
    return this.deps.writeBuffer;
  }

  /** Flush threads in use, or undefined when the file step runs on this thread. */
  get threads(): FlushThreadPool | undefined {
    return this.deps.threads;
  }

  async process(job: FlushJob): Promise<void> {
    const current = await this.deps.meta.pchannelTerm(job.pchannel);
    if (current !== job.term) {
      this.deps.writeBuffer?.discard(job); // a later owner flushes it from the WAL
      throw new ChannelFencedError(job.pchannel, job.term, current);
    }
    const buffered = this.deps.writeBuffer?.take(job);
    const files = buffered ? await this.writeBuffered(job, buffered) : await this.writeFiles(job);
    this.counts[buffered ? 'writeBuffer' : 'wal']++;
    const record: FlushedSegment = {
      segmentId: job.segmentId,
      collectionId: job.collectionId,
      partitionId: job.partitionId,
      vchannel: job.vchannel,
      rows: files.rows,
      deletes: files.deletes,
      manifest: files.manifest,
      term: job.term,
      flushTimetick: job.toTimetick,
    };
    // The commit: only at the owner's current term.
    await this.deps.meta.casOwnerWrite(job.pchannel, job.term, [{ key: pchannelKey(job.pchannel, flushedKeyPath(job.segmentId)), value: JSON.stringify(record) }]);
    this.logger.debug('segment committed', { ...record, threadId: files.threadId, from: buffered ? 'write buffer' : 'wal' });
  }

  /** Jobs whose files this worker wrote, by where their rows came from. */
  get sources(): FlushSources {
    return { ...this.counts };
  }

  /** Ends the flush threads, if any (running jobs may finish first, see FlushThreadPool.close). Idempotent. */
  async close(): Promise<void> {
    await this.deps.threads?.close();
  }

  private writeFiles(job: FlushJob): Promise<FlushFiles> {
    const { threads, backend, objects, root } = this.deps;
    return threads ? threads.run(job) : writeFlushFiles(job, { backend, objects, root, threadId });
  }

  /** Writes the files of a segment the write buffer encoded (on a flush thread when there are threads: the checksums are most of the work left). */
  private async writeBuffered(job: FlushJob, rows: SegmentRows): Promise<FlushFiles> {
    const data = await rows.finishData();
    const { threads, objects, writeBuffer } = this.deps;
    if (!threads) {
      const files = await writeSegmentFiles(data, { objects, threadId });
      rows.recycle(); // written: the batch buffers serve the next segments
      return files;
    }
    const { buffers, ...files } = await threads.run(job, data);
    if (buffers) writeBuffer?.recycle(buffers);
    return files;
  }
}
