/**
 * Shard interceptor: checks every Insert/Delete against its vchannel's collections and partitions
 * (and inserts against the collection schema), assigns every insert to a growing segment (a
 * partition without room gets a new segment first: the insert is redone once the CreateSegment is
 * written), and applies DDL, CreateSegment, Flush and ManualFlush to the vchannel meta and the
 * segments once written. A message for a collection that does not exist (yet, or any more) is
 * UNRECOVERABLE and not written.
 */
import type { Message } from '../../../runtime/message/types';
import { estimateInsertBytes, validateInsert, validateSchema } from '../../../runtime/message/validate';
import type { Segment, SegmentManager } from '../segments';
import type { VChannelMeta } from '../vchannel-meta';
import type { AppendNext, AppendResult, Interceptor } from './interceptor';
import { Redo } from './redo';

export interface ShardContext {
  meta: VChannelMeta;
  segments: SegmentManager;
  /** Monotonic ms. */
  now(): number;
  /** Starts writing a CreateSegment for the partition (one at a time per partition); resolves once it is written. */
  createSegment(vchannel: string, collectionId: number, partitionId: number): Promise<void>;
  /** Writes Flush messages for sealed segments, in the background (never synchronously: see the timetick rule). */
  flushSegments(segments: Segment[]): void;
}

export class ShardInterceptor implements Interceptor {
  readonly name = 'shard';
  constructor(private readonly ctx: ShardContext) {}

  async doAppend(msg: Message, next: AppendNext): Promise<AppendResult> {
    const { meta, segments } = this.ctx;
    switch (msg.type) {
      case 'Insert': {
        const c = meta.requirePartition(msg.vchannel, msg.header.collectionId, msg.header.partitionId, 'Insert');
        const { rows } = validateInsert(c.schema, msg.body.columns);
        msg.header.rows = rows;
        msg.header.bytes = estimateInsertBytes(msg.body.columns);
        const a = segments.assign(msg.vchannel, msg.header.collectionId, msg.header.partitionId, rows, msg.header.bytes, this.ctx.now());
        if (a.sealed.length > 0) this.ctx.flushSegments(a.sealed);
        if ('needSegment' in a) throw new Redo(this.ctx.createSegment(msg.vchannel, msg.header.collectionId, msg.header.partitionId));
        msg.header.segmentId = a.segmentId;
        return next(msg);
      }
      case 'Delete':
        meta.requirePartition(msg.vchannel, msg.header.collectionId, msg.header.partitionId, 'Delete');
        msg.header.rows = msg.body.primaryKeys.data.length;
        return next(msg);
      case 'CreateSegment': {
        meta.requirePartition(msg.vchannel, msg.header.collectionId, msg.header.partitionId, 'CreateSegment');
        const r = await next(msg);
        segments.created({
          segmentId: msg.header.segmentId,
          vchannel: msg.vchannel,
          collectionId: msg.header.collectionId,
          partitionId: msg.header.partitionId,
          maxRows: msg.header.maxRows,
          maxBytes: msg.header.maxBytes,
          createId: r.id,
          createTimetick: r.timetick,
          createdAt: this.ctx.now(),
        });
        return r;
      }
      case 'Flush': {
        const r = await next(msg);
        segments.flushed(msg.header.segmentId);
        return r;
      }
      case 'ManualFlush': {
        meta.checkDdl(msg);
        // Seals every growing segment of the collection here; the ManualFlush itself is their flush marker.
        const ids = segments.sealCollection(msg.vchannel, msg.header.collectionId);
        msg.header.segmentIds = ids;
        const r = await next(msg);
        for (const id of ids) segments.flushed(id);
        return { ...r, extra: { segmentIds: ids } };
      }
      case 'CreateCollection':
      case 'DropCollection':
      case 'CreatePartition':
      case 'DropPartition': {
        if (msg.type === 'CreateCollection') validateSchema(msg.body.schema);
        meta.checkDdl(msg);
        const r = await next(msg);
        meta.apply(msg);
        if (msg.type === 'DropCollection') segments.drop(msg.vchannel, msg.header.collectionId);
        if (msg.type === 'DropPartition') segments.drop(msg.vchannel, msg.header.collectionId, msg.header.partitionId);
        return r;
      }
      default:
        return next(msg);
    }
  }
}
