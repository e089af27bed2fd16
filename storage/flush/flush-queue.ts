/**
 * Flush jobs: a sealed segment's rows go from the WAL to object storage. The job names the segment
 * and the WAL range holding its rows; the worker reads that range, writes the segment files, and
 * commits the segment as flushed with a compare-and-set on the owner's term (a fenced owner's job
 * never lands). Job id = segment id, so a retried or resubmitted job is idempotent.
 * Implementations: in-process (standalone) and BullMQ (cluster), same interface.
 */
import type { MessageId } from '../../runtime/message/message-id';
import type { CollectionSchema } from '../../runtime/message/types';

export interface FlushJob {
  pchannel: string;
  /** Term of the owner that sealed it; the commit is a CAS on it. */
  term: number;
  segmentId: number;
  vchannel: string;
  collectionId: number;
  partitionId: number;
  schema: CollectionSchema;
  /** Position of the segment's CreateSegment: its rows are at or after it. */
  fromId: MessageId;
  /** Position of its Flush (or ManualFlush): its rows are before it. */
  toId: MessageId;
  /** Timetick of the flush marker (decimal string). */
  toTimetick: string;
}

export interface FlushQueue {
  /** Queues the job (idempotent per segment id). */
  submit(job: FlushJob): Promise<void>;
  /** Stops taking jobs; in-process queues finish or abandon running ones. Idempotent. */
  close(): Promise<void>;
}

/** The MetaStore key (in the pchannel's owner namespace) that marks a segment flushed. */
export function flushedKeyPath(segmentId: number): string {
  return `flushed/${segmentId}`;
}
