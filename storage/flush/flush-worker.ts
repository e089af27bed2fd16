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
import { toLogMessage } from '../../runtime/message/codec';
import type { LogMessage } from '../../runtime/message/types';
import type { WalBackend } from '../wal/backend';
import type { MetaStore } from '../meta/meta-store';
import { pchannelKey } from '../meta/meta-store';
import type { ObjectStore } from '../objects/object-store';
import { encodeSegment, writeSegment, type DeleteBatch, type InsertBatch } from '../segments/segment-writer';
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
    const { inserts, deletes } = await this.collect(job);
    const rows = inserts.reduce((n, b) => n + rowCount(b), 0);
    const encoded = encodeSegment(
      { collectionId: job.collectionId, partitionId: job.partitionId, segmentId: job.segmentId, schema: job.schema, inserts, deletes },
      { root: this.deps.root },
    );
    await writeSegment(this.deps.objects, encoded);
    const record: FlushedSegment = {
      segmentId: job.segmentId,
      collectionId: job.collectionId,
      partitionId: job.partitionId,
      vchannel: job.vchannel,
      rows,
      deletes: deletes.reduce((n, d) => n + d.primaryKeys.data.length, 0),
      manifest: encoded.paths.manifest,
      term: job.term,
      flushTimetick: job.toTimetick,
    };
    // The commit: only at the owner's current term.
    await this.deps.meta.casOwnerWrite(job.pchannel, job.term, [{ key: pchannelKey(job.pchannel, flushedKeyPath(job.segmentId)), value: JSON.stringify(record) }]);
    this.logger.debug('segment committed', { ...record });
  }

  /** Reads the segment's rows from the WAL. */
  private async collect(job: FlushJob): Promise<{ inserts: InsertBatch[]; deletes: DeleteBatch[] }> {
    const log = await this.deps.backend.open({ name: job.pchannel, term: 0, accessMode: 'ro' });
    const abort = new AbortController();
    const inserts: InsertBatch[] = [];
    const deleteMsgs: LogMessage[] = [];
    const txns = new TxnBuffer();
    /** Transactions with rows in this segment, still open at the flush marker. */
    const pendingTxns = new Set<bigint>();
    let pastMarker = false;
    const take = (m: LogMessage): void => {
      if (m.type === 'Insert' && m.header.segmentId === job.segmentId) inserts.push({ timetick: m.timetick, columns: m.body.columns });
      else if (m.type === 'Delete' && m.header.collectionId === job.collectionId && (m.header.partitionId === -1 || m.header.partitionId === job.partitionId)) deleteMsgs.push(m);
    };
    try {
      for await (const entry of log.read({ policy: { type: 'startFrom', id: job.fromId }, signal: abort.signal })) {
        if (!pastMarker && entry.id >= job.toId) {
          pastMarker = true;
          if (pendingTxns.size === 0) break;
        }
        const m = toLogMessage(entry);
        if (m.vchannel !== job.vchannel && m.vchannel !== '') continue;
        if (pastMarker && !(m.txn && pendingTxns.has(m.txn.id)) && m.type !== 'TimeTick') continue;
        if (!pastMarker && m.txn && m.type === 'Insert' && m.header.segmentId === job.segmentId) pendingTxns.add(m.txn.id);
        const out = txns.handle(m);
        if (m.txn && (m.type === 'CommitTxn' || m.type === 'RollbackTxn')) pendingTxns.delete(m.txn.id);
        if (m.type === 'TimeTick') for (const id of [...pendingTxns]) if (!txns.isOpen(id)) pendingTxns.delete(id);
        if (out?.type === 'Txn') for (const b of out.body.messages) take(b);
        else if (out && out.type !== 'TimeTick' && !(pastMarker && !m.txn)) take(out);
        if (pastMarker && pendingTxns.size === 0) break;
      }
    } finally {
      abort.abort();
      await log.close();
    }
    // Deletes of keys this segment holds.
    const pkName = job.schema.fields.find((f) => f.primaryKey)?.name;
    const keys = new Set<number | string>();
    for (const b of inserts) {
      const col = b.columns.find((c) => c.name === pkName);
      if (col && col.type !== 'floatVector') for (const v of col.data as (number | string)[]) keys.add(v);
    }
    const deletes: DeleteBatch[] = [];
    for (const m of deleteMsgs) {
      if (m.type !== 'Delete') continue;
      const pks = m.body.primaryKeys;
      const mine = pks.type === 'int64' ? pks.data.filter((k) => keys.has(k)) : pks.data.filter((k) => keys.has(k));
      if (mine.length > 0) deletes.push({ timetick: m.timetick, primaryKeys: pks.type === 'int64' ? { type: 'int64', data: mine as number[] } : { type: 'varchar', data: mine as string[] } });
    }
    return { inserts, deletes };
  }
}

function rowCount(b: InsertBatch): number {
  const c = b.columns[0];
  if (!c) return 0;
  return c.type === 'floatVector' ? c.data.length / c.dim : c.data.length;
}
