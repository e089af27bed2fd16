/**
 * Shard interceptor: checks every Insert/Delete against its vchannel's collections and partitions
 * (and inserts against the collection schema), assigns every insert to a growing segment (a
 * partition without room gets a new segment first: the insert is redone once the CreateSegment is
 * written), and applies DDL, CreateSegment, Flush and ManualFlush to the vchannel meta and the
 * segments once written. A message for a collection that does not exist (yet, or any more) is
 * UNRECOVERABLE and not written.
 */
import type { Message } from '../../../runtime/message/types';
import { estimateInsertBytes, primaryKeyOf, validateInsert, validateSchema } from '../../../runtime/message/validate';
import type { Segment, SegmentManager } from '../segments';
import type { VChannelMeta } from '../vchannel-meta';
import { appendAsync, failed, settle, type AppendDone, type AppendNext, type AppendResult, type Interceptor } from './interceptor';
import { Redo } from './redo';

/** Rows per segment that generated keys leave room for (segments are smaller: see SegmentLimits). */
export const AUTO_ID_ROWS_PER_SEGMENT = 2 ** 21;

/** The generated key of row `row` of segment `segmentId`: unique, a safe integer for segment ids < 2^32. */
export function autoIdOf(segmentId: number, row: number): number {
  return segmentId * AUTO_ID_ROWS_PER_SEGMENT + row;
}

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

/** The primary keys generated for an insert into an autoId collection: first, first + 1, … (count). */
interface GeneratedKeys {
  first: number;
  count: number;
}

export class ShardInterceptor implements Interceptor {
  readonly name = 'shard';
  constructor(private readonly ctx: ShardContext) {}

  doAppend(msg: Message, next: AppendNext, done: AppendDone): void {
    switch (msg.type) {
      case 'Insert':
      case 'Delete':
        // Inserts and deletes pass on in the same turn.
        this.dml(msg, next, done);
        return;
      case 'CreateSegment':
      case 'Flush':
      case 'ManualFlush':
      case 'CreateCollection':
      case 'DropCollection':
      case 'CreatePartition':
      case 'DropPartition':
        settle(this.withMeta(msg, (m) => appendAsync(next, m)), done);
        return;
      default:
        next(msg, done);
    }
  }

  private dml(msg: Message, next: AppendNext, done: AppendDone): void {
    let prepared: Redo | GeneratedKeys | undefined;
    try {
      prepared = this.prepare(msg);
    } catch (e) {
      done(failed(e));
      return;
    }
    // Outside the try: done is answered once, by the pipe (a throw out of a caller's callback must not answer it again).
    if (prepared instanceof Redo) done(failed(prepared));
    else if (prepared === undefined) next(msg, done);
    else {
      const autoIds = prepared;
      next(msg, (o) => done(o.ok ? { ok: true, value: { ...o.value, extra: { autoIds } } } : o));
    }
  }

  /**
   * Checks an insert or delete against the meta (and an insert against the schema) and assigns an
   * insert to a growing segment. Returns a Redo when the partition needs a new segment first, the
   * generated keys of an insert into an autoId collection, or nothing.
   */
  private prepare(msg: Message): Redo | GeneratedKeys | undefined {
    const { meta, segments } = this.ctx;
    if (msg.type === 'Delete') {
      meta.requirePartition(msg.vchannel, msg.header.collectionId, msg.header.partitionId, 'Delete');
      msg.header.rows = msg.body.primaryKeys.data.length;
      return undefined;
    }
    if (msg.type !== 'Insert') return undefined;
    const c = meta.requirePartition(msg.vchannel, msg.header.collectionId, msg.header.partitionId, 'Insert');
    const { rows } = validateInsert(c.schema, msg.body.columns);
    msg.header.rows = rows;
    msg.header.bytes = estimateInsertBytes(msg.body.columns);
    const a = segments.assign(msg.vchannel, msg.header.collectionId, msg.header.partitionId, rows, msg.header.bytes, this.ctx.now());
    if (a.sealed.length > 0) this.ctx.flushSegments(a.sealed);
    if ('needSegment' in a) return new Redo(this.ctx.createSegment(msg.vchannel, msg.header.collectionId, msg.header.partitionId));
    msg.header.segmentId = a.segmentId;
    const pk = primaryKeyOf(c.schema);
    if (!pk?.autoId) return undefined;
    // Keys unique cluster-wide: the segment id (a MetaStore counter) and the row's place in it.
    const first = autoIdOf(a.segmentId, a.firstRow);
    msg.body = { columns: [{ name: pk.name, type: 'int64', data: Array.from({ length: rows }, (_, i) => first + i) }, ...msg.body.columns] };
    return { first, count: rows };
  }

  /** Messages whose meta changes apply once written (an async frame: it awaits next). */
  private async withMeta(msg: Message, next: (msg: Message) => Promise<AppendResult>): Promise<AppendResult> {
    const { meta, segments } = this.ctx;
    switch (msg.type) {
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
