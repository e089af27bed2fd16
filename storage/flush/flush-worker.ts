/**
 * The flush worker: turns one sealed segment into files in object storage. It reads the segment's
 * WAL range (from its CreateSegment to its flush marker; a transaction with rows in the segment
 * that is still open there is followed until it commits, rolls back or expires), keeps the inserts
 * assigned to the segment (committed transactions only) and the deletes of its keys, writes the
 * Arrow files and the manifest, then commits the segment as flushed with a compare-and-set on the
 * job's term — a fenced owner's job writes at most identical, uncommitted files.
 */
import type { Logger } from '../../runtime/logger';
import { createLogger } from '../../runtime/logger';
import { ChannelFencedError } from '../../runtime/errors';
import { decodeLazily } from '../../runtime/message/codec';
import type { DeleteMessage, LogMessage } from '../../runtime/message/types';
import type { LogEntry, WalBackend } from '../wal/backend';
import type { MetaStore } from '../meta/meta-store';
import { pchannelKey } from '../meta/meta-store';
import type { ObjectStore } from '../objects/object-store';
import { SegmentEncoder, writeSegmentData, type DeleteBatch } from '../segments/segment-writer';
import { TxnBuffer } from '../../actors/wal/scanner/txn-buffer';
import { flushedKeyPath, type FlushJob } from './flush-queue';
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
  /** Read-only access to the pchannel's log. */
  backend: WalBackend;
  objects: ObjectStore;
  meta: MetaStore;
  /** Layout root of segments in the object store. */
  root: string;
  logger?: Logger;
}

export class SegmentFlushWorker implements FlushWorker {
  private readonly logger: Logger;

  constructor(private readonly deps: SegmentFlushWorkerDeps) {
    this.logger = deps.logger ?? createLogger('flush.worker');
  }

  async process(job: FlushJob): Promise<void> {
    const current = await this.deps.meta.pchannelTerm(job.pchannel);
    if (current !== job.term) throw new ChannelFencedError(job.pchannel, job.term, current);
    const segment = new SegmentEncoder({ collectionId: job.collectionId, partitionId: job.partitionId, segmentId: job.segmentId, schema: job.schema }, { root: this.deps.root });
    const collector = new SegmentRowCollector(job, segment);
    await this.readRange(job, collector);
    for (const d of collector.deletesOfInsertedKeys()) segment.addDelete(d);
    const encoded = await writeSegmentData(this.deps.objects, segment.finishData());
    const record: FlushedSegment = {
      segmentId: job.segmentId,
      collectionId: job.collectionId,
      partitionId: job.partitionId,
      vchannel: job.vchannel,
      rows: encoded.manifest.files.inserts.rows,
      deletes: encoded.manifest.files.deletes.rows,
      manifest: encoded.paths.manifest,
      term: job.term,
      flushTimetick: job.toTimetick,
    };
    // The commit: only at the owner's current term.
    await this.deps.meta.casOwnerWrite(job.pchannel, job.term, [{ key: pchannelKey(job.pchannel, flushedKeyPath(job.segmentId)), value: JSON.stringify(record) }]);
    this.logger.debug('segment committed', { ...record });
  }

  /** Feeds the segment's WAL range to the collector until it has everything. */
  private async readRange(job: FlushJob, collector: SegmentRowCollector): Promise<void> {
    const log = await this.deps.backend.open({ name: job.pchannel, term: 0, accessMode: 'ro' });
    const abort = new AbortController();
    try {
      for await (const entry of log.read({ policy: { type: 'startFrom', id: job.fromId }, signal: abort.signal })) {
        if (!collector.take(entry)) break;
      }
    } finally {
      abort.abort();
      await log.close();
    }
  }
}

/**
 * Takes a segment's rows from its WAL range, entry by entry: the inserts assigned to the segment
 * (committed transactions only, at their commit) go straight into the encoder, and the deletes of
 * the collection (its partition or all partitions) are kept for deletesOfInsertedKeys.
 *
 * Only headers are decoded up front. An insert outside a transaction needs nothing else: if it is
 * the segment's, its encoded columns are copied into the Arrow batches without decoding a value,
 * otherwise its body is never read (not even checksummed: nothing of it is used). Everything else on
 * the vchannel (transaction control and bodies, deletes, time ticks) is decoded whole and goes
 * through a TxnBuffer, which assembles committed transactions and drops rolled back or expired ones.
 */
class SegmentRowCollector {
  private readonly txns = new TxnBuffer();
  /** Transactions with rows in this segment, still open at the flush marker. */
  private readonly pendingTxns = new Set<bigint>();
  private readonly deleteMsgs: LogMessage<DeleteMessage>[] = [];
  private pastMarker = false;

  constructor(
    private readonly job: FlushJob,
    private readonly segment: SegmentEncoder,
  ) {}

  /** Takes the next entry of the range; false once the range is complete (nothing after this entry is needed). */
  take(entry: LogEntry): boolean {
    const { job, pendingTxns } = this;
    if (!this.pastMarker && entry.id >= job.toId) {
      this.pastMarker = true;
      if (pendingTxns.size === 0) return false;
    }
    const lazy = decodeLazily(entry.data);
    const h = lazy.header;
    if (h.vchannel !== job.vchannel && h.vchannel !== '') return true;
    // Past the marker only the pending transactions matter (and time ticks, which expire them).
    if (this.pastMarker && !(h.txn && pendingTxns.has(h.txn.id)) && h.type !== 'TimeTick') return true;
    if (h.type === 'Insert' && h.txn === undefined) {
      if (h.header.segmentId === job.segmentId) this.segment.addEncodedInsert(lazy.insertColumns(), h.timetick);
      return true;
    }
    const m = { ...h, body: lazy.body(), id: entry.id, size: entry.data.length } as LogMessage;
    if (!this.pastMarker && m.txn && m.type === 'Insert' && m.header.segmentId === job.segmentId) pendingTxns.add(m.txn.id);
    const out = this.txns.handle(m);
    if (m.txn && (m.type === 'CommitTxn' || m.type === 'RollbackTxn')) pendingTxns.delete(m.txn.id);
    if (m.type === 'TimeTick') for (const id of [...pendingTxns]) if (!this.txns.isOpen(id)) pendingTxns.delete(id);
    if (out?.type === 'Txn') for (const b of out.body.messages) this.keep(b);
    else if (out && out.type !== 'TimeTick' && !(this.pastMarker && !m.txn)) this.keep(out);
    return !(this.pastMarker && pendingTxns.size === 0);
  }

  /** The kept deletes, narrowed to the keys the segment's inserts hold (none when it has none). */
  deletesOfInsertedKeys(): DeleteBatch[] {
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
    else if (m.type === 'Delete' && m.header.collectionId === job.collectionId && (m.header.partitionId === -1 || m.header.partitionId === job.partitionId)) this.deleteMsgs.push(m);
  }
}
