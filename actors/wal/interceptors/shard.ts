/**
 * Shard interceptor: checks every Insert/Delete against its vchannel's collections and partitions
 * (and inserts against the collection schema), and applies DDL to the vchannel meta once written.
 * A message for a collection that does not exist (yet, or any more) is UNRECOVERABLE and not written.
 * Segment assignment joins here later.
 */
import type { Message } from '../../../runtime/message/types';
import { estimateInsertBytes, validateInsert, validateSchema } from '../../../runtime/message/validate';
import type { VChannelMeta } from '../vchannel-meta';
import type { AppendNext, AppendResult, Interceptor } from './interceptor';

export interface ShardContext {
  meta: VChannelMeta;
}

export class ShardInterceptor implements Interceptor {
  readonly name = 'shard';
  constructor(private readonly ctx: ShardContext) {}

  async doAppend(msg: Message, next: AppendNext): Promise<AppendResult> {
    const { meta } = this.ctx;
    switch (msg.type) {
      case 'Insert': {
        const c = meta.requirePartition(msg.vchannel, msg.header.collectionId, msg.header.partitionId, 'Insert');
        const { rows } = validateInsert(c.schema, msg.body.columns);
        msg.header.rows = rows;
        msg.header.bytes = estimateInsertBytes(msg.body.columns);
        return next(msg);
      }
      case 'Delete':
        meta.requirePartition(msg.vchannel, msg.header.collectionId, msg.header.partitionId, 'Delete');
        msg.header.rows = msg.body.primaryKeys.data.length;
        return next(msg);
      case 'CreateCollection':
      case 'DropCollection':
      case 'CreatePartition':
      case 'DropPartition':
      case 'ManualFlush': {
        if (msg.type === 'CreateCollection') validateSchema(msg.body.schema);
        meta.checkDdl(msg);
        const r = await next(msg);
        meta.apply(msg);
        return msg.type === 'ManualFlush' ? { ...r, extra: { segmentIds: msg.header.segmentIds } } : r;
      }
      default:
        return next(msg);
    }
  }
}
