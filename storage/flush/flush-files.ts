/**
 * The file step of a flush job, the CPU-heavy part: read the segment's WAL range, take its rows,
 * encode the Arrow files, checksum them and put them (data files, then the manifest) into the object
 * store. SegmentRows, which takes the rows, is also what the write buffer (write-buffer.ts) feeds
 * as messages are persisted; writeSegmentFiles then writes what it encoded. It commits nothing: SegmentFlushWorker checks the term before and commits after, on the
 * caller's thread, while this step runs either there (flush.threads = 0, the memory WAL) or in a
 * flush thread (flush-thread.ts) that opened its own WAL backend and object store. Both call this
 * one function, so the two ways cannot drift apart.
 *
 * Everything it returns crosses a thread boundary (structured clone): plain data only.
 */
import { MessageScanner, decodeLazily } from '../../runtime/message/codec';
import type { DeleteMessage, LogMessage } from '../../runtime/message/types';
import { forEachEntry, type LogEntry, type WalBackend } from '../wal/backend';
import type { ObjectStore } from '../objects/object-store';
import { SegmentEncoder, writeSegmentData, type DeleteBatch, type EncodeOptions, type SegmentData } from '../segments/segment-writer';
import type { MessageId } from '../../runtime/message/message-id';
import { BatchBufferPool } from '../segments/table-builder';
import type { FileChecksum } from '../segments/manifest';
import { TxnBuffer } from '../../actors/wal/scanner/txn-buffer';
import type { FlushJob } from './flush-queue';

/** What the file step wrote: the commit record is built from it and the job. */
export interface FlushFiles {
  /** Rows of the inserts file. */
  rows: number;
  /** Rows of the deletes file. */
  deletes: number;
  /** Object key of the manifest (present = the segment's files are complete). */
  manifest: string;
  /** The data files as the manifest names them: bytes and checksum. */
  files: Record<'inserts' | 'deletes', { bytes: number; checksum: FileChecksum }>;
  /** node:worker_threads threadId of the thread that did the work (0 = the main thread). */
  threadId: number;
  /** From a flush thread that wrote a segment the write buffer encoded: its batch buffers, moved back to be reused. */
  buffers?: ArrayBuffer[];
}

export interface FlushFilesDeps {
  /** Read-only access to the pchannel's log. */
  backend: WalBackend;
  objects: ObjectStore;
  /** Layout root of segments in the object store. */
  root: string;
  /** node:worker_threads threadId of the calling thread, reported in FlushFiles. */
  threadId: number;
  /**
   * Called once the segment is encoded, when what is left is checksumming and writing the files:
   * from here on the job mostly waits on the store, and its thread may start encoding another.
   */
  onWriting?: () => void;
}

/**
 * Batch buffers of this thread's earlier flushes: the jobs of a thread come one after another and
 * mostly have one shape, so the next job fills the buffers the last one wrote out instead of
 * faulting in fresh memory. At most a large segment's worth, dropped after a few idle seconds.
 */
const batchBuffers = new BatchBufferPool(256 * 1024 * 1024, 5_000);

/** Reads the job's WAL range, writes the segment's files and manifest; commits nothing. Idempotent. */
export async function writeFlushFiles(job: FlushJob, deps: FlushFilesDeps): Promise<FlushFiles> {
  const rows = new SegmentRows(job, { root: deps.root, buffers: batchBuffers });
  await readRange(deps.backend, job, rows);
  const data = await rows.finishData();
  const files = await writeSegmentFiles(data, deps);
  rows.recycle(); // written: nothing refers to the batches any more
  return files;
}

/**
 * Writes a segment's encoded files (from writeFlushFiles, or from the write buffer, which encoded
 * the segment as its messages were persisted) and its manifest; commits nothing. Idempotent.
 */
export async function writeSegmentFiles(data: SegmentData, deps: Pick<FlushFilesDeps, 'objects' | 'threadId' | 'onWriting'>): Promise<FlushFiles> {
  deps.onWriting?.();
  const encoded = await writeSegmentData(deps.objects, data);
  const { inserts, deletes } = encoded.manifest.files;
  return {
    rows: inserts.rows,
    deletes: deletes.rows,
    manifest: encoded.paths.manifest,
    files: { inserts: { bytes: inserts.bytes, checksum: inserts.checksum }, deletes: { bytes: deletes.bytes, checksum: deletes.checksum } },
    threadId: deps.threadId,
  };
}

/** Feeds the segment's WAL range to `rows` until it has everything. */
async function readRange(backend: WalBackend, job: FlushJob, rows: SegmentRows): Promise<void> {
  const log = await backend.open({ name: job.pchannel, term: 0, accessMode: 'ro' });
  try {
    // Transient: everything kept of an entry is copied (rows into the Arrow batches, other messages decoded).
    await forEachEntry(log, { policy: { type: 'startFrom', id: job.fromId }, transient: true }, (entry) => rows.take(entry));
  } finally {
    await log.close();
  }
}

/** The segment whose rows a SegmentRows takes, and where its range ends (once known). */
export type SegmentOfRange = Pick<FlushJob, 'segmentId' | 'vchannel' | 'collectionId' | 'partitionId' | 'schema'> & { toId?: MessageId };

/**
 * Takes a segment's rows from its WAL range, entry by entry, and encodes them: the inserts assigned
 * to the segment (committed transactions only, at their commit) go straight into the encoder, and
 * the deletes of the collection (its partition or all partitions) are kept for the deletes file
 * (narrowed to the keys the segment's inserts hold). The flush worker feeds it the range read
 * back from the WAL; the write buffer (write-buffer.ts) feeds it each entry as the WAL persists it.
 * Fed the same entries, both encode the same files.
 *
 * Each entry is first scanned (MessageScanner: envelope and header checked, nothing decoded or
 * allocated). An insert outside a transaction needs nothing else: if it is the segment's, its
 * encoded columns are copied into the Arrow batches without decoding a value, otherwise its body is
 * never read (not even checksummed: nothing of it is used). Everything else on the vchannel
 * (transaction control and bodies, deletes, time ticks) is decoded whole and goes through a
 * TxnBuffer, which assembles committed transactions and drops rolled back or expired ones.
 */
export class SegmentRows {
  private readonly segment: SegmentEncoder;
  private readonly txns = new TxnBuffer();
  /** Transactions met in the range (begun in it or before it): one that ended is never taken up again. */
  private readonly seenTxns = new Set<bigint>();
  /** Transactions with rows in this segment, still open at the flush marker. */
  private readonly pendingTxns = new Set<bigint>();
  private readonly deleteMsgs: LogMessage<DeleteMessage>[] = [];
  private pastMarker = false;
  private done = false;
  /** Encoded bytes of the deletes kept. */
  private deleteBytes = 0;
  private toId: MessageId | undefined;
  private readonly scanner = new MessageScanner();
  /** UTF-8 of the job's vchannel, compared with each entry's. */
  private readonly vchannel: Uint8Array;

  constructor(
    private readonly job: SegmentOfRange,
    opts: EncodeOptions,
  ) {
    this.segment = new SegmentEncoder({ collectionId: job.collectionId, partitionId: job.partitionId, segmentId: job.segmentId, schema: job.schema }, opts);
    this.vchannel = Buffer.from(job.vchannel, 'utf8');
    this.toId = job.toId;
  }

  /** Where the range ends: the id of the segment's flush marker (set before the marker is taken). */
  markerAt(id: MessageId): void {
    this.toId = id;
  }

  /** The id of the segment's flush marker, once known. */
  get markerId(): MessageId | undefined {
    return this.toId;
  }

  /** Whether every entry the segment needs was taken (take answered false). */
  get complete(): boolean {
    return this.done;
  }

  /** Bytes held: the record batches built so far, the deletes kept and the messages of the open transactions. */
  get heldBytes(): number {
    return this.segment.heldBytes + this.deleteBytes + this.txns.openBytes;
  }

  /** The encoded data files (the deletes of the inserted keys added). Once complete; spends the encoder. */
  async finishData(): Promise<SegmentData> {
    for (const d of this.deletesOfInsertedKeys()) this.segment.addDelete(d);
    return this.segment.finishData();
  }

  /** See SegmentEncoder.recycle. */
  recycle(): void {
    this.segment.recycle();
  }

  /** Takes the next entry of the range; false once the range is complete (nothing after this entry is needed). */
  take(entry: LogEntry): boolean {
    const more = this.takeEntry(entry);
    if (!more) this.done = true;
    return more;
  }

  private takeEntry(entry: LogEntry): boolean {
    const { job, pendingTxns } = this;
    if (!this.pastMarker && this.toId !== undefined && entry.id >= this.toId) {
      this.pastMarker = true;
      if (pendingTxns.size === 0) return false;
    }
    const scan = this.scanner;
    const verified = entry.verified === true;
    scan.scan(entry.data, { verified });
    if (!scan.pchannelWide && !scan.vchannelIs(this.vchannel)) return true;
    // Past the marker only the pending transactions matter (and time ticks, which expire them).
    if (this.pastMarker && !(scan.hasTxn && pendingTxns.has(scan.txnId())) && scan.type !== 'TimeTick') return true;
    if (scan.type === 'Insert' && !scan.hasTxn) {
      if (scan.segmentId === job.segmentId) {
        scan.scanInsertColumns();
        this.segment.addScannedInsert(scan.columns, scan.timetick());
      }
      return true;
    }
    const lazy = decodeLazily(entry.data, { verified });
    const m = { ...lazy.header, body: lazy.body(), id: entry.id, size: entry.data.length } as LogMessage;
    if (m.txn && !this.seenTxns.has(m.txn.id)) {
      this.seenTxns.add(m.txn.id);
      if (!this.pastMarker && (m.type === 'Insert' || m.type === 'Delete')) {
        // A transaction begun before the range: the insert that created this segment may be its own
        // (the shard interceptor assigns a transaction's inserts as it does others). Every row of it
        // in this segment is in the range, so it is followed from here as if it began here.
        this.txns.handle({ ...m, type: 'BeginTxn', header: { keepaliveMs: m.txn.keepaliveMs }, body: {} } as LogMessage);
      }
    }
    if (!this.pastMarker && m.txn && m.type === 'Insert' && m.header.segmentId === job.segmentId) pendingTxns.add(m.txn.id);
    const out = this.txns.handle(m);
    if (m.txn && (m.type === 'CommitTxn' || m.type === 'RollbackTxn')) pendingTxns.delete(m.txn.id);
    if (m.type === 'TimeTick') for (const id of [...pendingTxns]) if (!this.txns.isOpen(id)) pendingTxns.delete(id);
    if (out?.type === 'Txn') for (const b of out.body.messages) this.keep(b);
    else if (out && out.type !== 'TimeTick' && !(this.pastMarker && !m.txn)) this.keep(out);
    return !(this.pastMarker && pendingTxns.size === 0);
  }

  /** The kept deletes, narrowed to the keys the segment's inserts hold (none when it has none). */
  private deletesOfInsertedKeys(): DeleteBatch[] {
    if (this.deleteMsgs.length === 0) return [];
    const keys = new Set<number | string>(this.segment.insertedKeys());
    const deletes: DeleteBatch[] = [];
    for (const m of this.deleteMsgs) {
      const pks = m.body.primaryKeys;
      const mine = pks.type === 'int64' ? pks.data.filter((k) => keys.has(k)) : pks.data.filter((k) => keys.has(k));
      if (mine.length > 0) deletes.push({ timetick: m.timetick, primaryKeys: pks.type === 'int64' ? { type: 'int64', data: mine as number[] } : { type: 'varchar', data: mine as string[] } });
    }
    return deletes;
  }

  /** A delivered message (alone or from a committed transaction, at its commit timetick). */
  private keep(m: LogMessage): void {
    const { job } = this;
    if (m.type === 'Insert' && m.header.segmentId === job.segmentId) this.segment.addInsert({ timetick: m.timetick, columns: m.body.columns });
    else if (m.type === 'Delete' && m.header.collectionId === job.collectionId && (m.header.partitionId === -1 || m.header.partitionId === job.partitionId)) {
      this.deleteMsgs.push(m);
      this.deleteBytes += m.size;
    }
  }
}
